"""The audit trail: every access and change as a FHIR AuditEvent (IHE BALP), in one ordered stream.

``events`` builds the AuditEvents and the PHI-free ledger leaf (pure); ``tables`` holds the
append-only ``audit_log`` and its ``audit_head`` counter; ``service`` writes with group commit and
answers "who looked at my record".
"""

from medweave.audit.events import (
    Actor,
    AuditRecord,
    break_glass_event,
    leaf_bytes,
    login_event,
    outcome_for_status,
    rest_event,
    security_change_event,
)
from medweave.audit.service import AuditError, AuditService

__all__ = [
    "Actor",
    "AuditError",
    "AuditRecord",
    "AuditService",
    "break_glass_event",
    "leaf_bytes",
    "login_event",
    "outcome_for_status",
    "rest_event",
    "security_change_event",
]
