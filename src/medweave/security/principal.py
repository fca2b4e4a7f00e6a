"""Who is asking: the one description of a caller that every access decision reads. Pure.

A principal is made at the edge (a bearer token, a page session, or the CLI) and passed down to
the services, which never look at HTTP. Roles are those of the platform; ``scopes`` are the SMART
scopes the caller holds (for a page session, the scopes its role grants); ``break_glass`` lists
the patients the caller currently has emergency access to (time-limited grants, resolved when
the principal is made).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from medweave.security.scopes import ScopeSet


class Role(StrEnum):
    PATIENT = "patient"
    CLINICIAN = "clinician"
    THERAPIST = "therapist"
    LAB_TECHNICIAN = "lab_technician"
    DATA_SCIENTIST = "data_scientist"
    ADMIN = "admin"


STAFF_ROLES = frozenset(
    {Role.CLINICIAN, Role.THERAPIST, Role.LAB_TECHNICIAN, Role.DATA_SCIENTIST, Role.ADMIN}
)
CARE_ROLES = frozenset({Role.CLINICIAN, Role.THERAPIST})

#: The most each role may ever be granted (a token's scopes are narrowed to this).
ROLE_SCOPES: dict[Role, str] = {
    Role.PATIENT: "patient/*.rs patient/QuestionnaireResponse.cu patient/Appointment.cu openid fhirUser",
    Role.CLINICIAN: "user/*.cruds openid fhirUser",
    Role.THERAPIST: "user/*.cruds openid fhirUser",
    Role.LAB_TECHNICIAN: "user/*.cruds openid fhirUser",
    Role.DATA_SCIENTIST: "user/*.rs openid fhirUser",
    Role.ADMIN: "user/*.cruds openid fhirUser",
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``kind`` is ``user`` (a person, by session or token), ``client`` (a backend integration with
    ``system/`` scopes) or ``internal`` (the CLI and maintenance jobs run by an operator).
    ``subject`` identifies it in the audit trail: a user id, a client name, or ``cli``.
    """

    kind: str
    subject: str
    scopes: ScopeSet
    role: Role | None = None
    patient_id: str | None = None
    practitioner_id: str | None = None
    break_glass: frozenset[str] = field(default_factory=frozenset)
    address: str | None = None
    client_id: str | None = None

    @classmethod
    def internal(cls, subject: str = "cli") -> Principal:
        """An operator at the command line: full access, audited like anyone else."""
        return cls(kind="internal", subject=subject, scopes=ScopeSet.parse("system/*.cruds"))

    @property
    def audit_ref(self) -> str:
        """The agent reference for AuditEvents: the FHIR resource of the person where there is one."""
        if self.role == Role.PATIENT and self.patient_id:
            return f"Patient/{self.patient_id}"
        if self.practitioner_id:
            return f"Practitioner/{self.practitioner_id}"
        return f"{self.kind}:{self.subject}"
