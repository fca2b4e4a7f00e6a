"""The one exception tree of Medweave.

Domains raise these; ``web`` maps them to an HTTP status and a FHIR OperationOutcome, ``cli`` to a
one-line message and an exit code. No traceback reaches a user.

    MedweaveError
    +-- InvalidInput          400  bad syntax, invalid resource, unsupported parameter (strict)
    |   +-- Unprocessable     422  well-formed but fails a business rule (profile/binding)
    +-- Unauthenticated       401  no, expired or invalid credentials
    +-- PermissionDenied      403
    +-- NotFound              404
    +-- Gone                  410  deleted, or crypto-shredded with its patient
    +-- Conflict              409  e.g. a create that names an id in use
    |   +-- PreconditionFailed 412 If-Match names a version that is no longer current
    +-- PayloadTooLarge       413
    +-- UnsupportedMediaType  415
    +-- ConfigurationError    500  the installation is mis-set (missing key file, bad URL)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Issue:
    """One problem, in the shape of an OperationOutcome.issue."""

    severity: str
    code: str
    diagnostics: str
    expression: list[str] = field(default_factory=list)

    def to_fhir(self) -> dict[str, object]:
        out: dict[str, object] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class MedweaveError(Exception):
    """Base of every error Medweave raises on purpose."""

    status = 500
    code = "exception"
    exit_code = 1

    def __init__(
        self, message: str, *, expression: list[str] | None = None, issues: list[Issue] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.issues = issues or [Issue("error", self.code, message, list(expression or []))]


class InvalidInput(MedweaveError):
    status = 400
    code = "invalid"
    exit_code = 2


class Unprocessable(InvalidInput):
    status = 422
    code = "processing"


class Unauthenticated(MedweaveError):
    status = 401
    code = "login"
    exit_code = 3


class PermissionDenied(MedweaveError):
    status = 403
    code = "forbidden"
    exit_code = 3


class NotFound(MedweaveError):
    status = 404
    code = "not-found"
    exit_code = 4


class Gone(MedweaveError):
    status = 410
    code = "deleted"
    exit_code = 4


class Conflict(MedweaveError):
    status = 409
    code = "conflict"
    exit_code = 5


class PreconditionFailed(Conflict):
    status = 412


class PayloadTooLarge(InvalidInput):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(InvalidInput):
    status = 415
    code = "not-supported"


class ConfigurationError(MedweaveError):
    status = 500
    code = "exception"
    exit_code = 6
