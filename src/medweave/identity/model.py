"""What the identity services return: plain, frozen values with no secrets in them. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from medweave.security.principal import STAFF_ROLES, Role

#: Why a sign-in attempt ended as it did; the page shows a message per reason, the audit records it.
#: ``bad_credentials`` is the one answer for an unknown username and for a wrong password.
Reason = Literal[
    "ok",
    "bad_credentials",
    "locked",
    "throttled",
    "totp_required",
    "totp_enrolment_required",
    "bad_totp",
    "disabled",
]


@dataclass(frozen=True)
class User:
    id: str
    username: str
    role: Role
    patient_id: str | None
    practitioner_id: str | None
    totp_enabled: bool
    disabled: bool
    created: datetime
    password_changed: datetime
    last_login: datetime | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def fhir_user(self) -> str | None:
        """The SMART ``fhirUser``: ``Patient/x`` or ``Practitioner/y``, when the user is linked."""
        if self.role == Role.PATIENT and self.patient_id:
            return f"Patient/{self.patient_id}"
        return f"Practitioner/{self.practitioner_id}" if self.practitioner_id else None


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one sign-in step.

    ``user`` is set once the password was right (so also for ``totp_required``,
    ``totp_enrolment_required``, ``bad_totp`` and ``disabled``), never for a wrong password or an
    unknown name. ``mfa`` is true when a second factor was verified in this step.
    """

    ok: bool
    reason: Reason
    user: User | None = None
    mfa: bool = False

    @property
    def failure(self) -> str | None:
        """Fixed text for the audit's outcomeDesc (``login_event(failure=...)``), None on success."""
        return None if self.ok else self.reason.replace("_", " ")


@dataclass(frozen=True)
class Session:
    """A page session, loaded from its cookie. ``csrf_token`` goes into every form of the page."""

    id: str  # SHA-256 of the cookie value, hex: safe to log, useless as a cookie
    user: User
    mfa: bool
    csrf_token: str
    address: str | None
    created: datetime
    last_seen: datetime
    expires: datetime  # the absolute end; the idle end is last_seen + the idle timeout

    @property
    def needs_second_factor(self) -> bool:
        """A staff session without a verified second factor: fit only for the TOTP pages."""
        return self.user.is_staff and not self.mfa


@dataclass(frozen=True)
class Grant:
    """A break-glass grant: emergency access by ``user_id`` to one patient, until ``expires``."""

    id: str
    user_id: str
    username: str
    patient_id: str
    reason: str
    started: datetime
    expires: datetime
    ended: datetime | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_note: str | None = None

    def active(self, now: datetime) -> bool:
        return self.ended is None and now < self.expires

    @property
    def pending_review(self) -> bool:
        return self.reviewed_at is None


@dataclass(frozen=True)
class Client:
    """A registered OAuth2 client: a SMART app (public, PKCE) or a backend integration."""

    id: str
    name: str
    public: bool
    redirect_uris: tuple[str, ...]
    scopes: str
    disabled: bool
    created: datetime


@dataclass(frozen=True)
class RegisteredClient:
    client: Client
    secret: str | None  # shown once for a confidential client; only its digest is stored


@dataclass(frozen=True)
class CodeGrant:
    """What a redeemed authorization code stood for: the token endpoint issues a token from it."""

    user: User
    scope: str
    patient_id: str | None
    client: Client
