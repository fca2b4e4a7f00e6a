"""Every record-store operation leaves an AuditEvent, whatever its outcome.

``Trail.event`` wraps one operation. The operation fills in what it learned (the patients whose
data it touched, the version), and on the way out — success or error — one AuditEvent per patient
is written, as IHE BALP asks for multi-patient responses (https://profiles.ihe.net/ITI/BALP/)
— the search query itself goes on one more event that names no patient —
through the group-committing audit service (``record_all``). The call returns only once its events
are durable, so no answered request is missing from the trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from medweave.audit import Actor, AuditService, rest_event
from medweave.errors import MedweaveError
from medweave.security.principal import Principal


@dataclass
class Note:
    """What an operation reports back for its audit event."""

    status: int = 200
    patients: set[str] = field(default_factory=set)
    version_id: int | None = None
    res_id: str | None = None


class Trail:
    def __init__(self, audit: AuditService | None):
        self.audit = audit

    @contextmanager
    def event(
        self,
        principal: Principal,
        interaction: str,
        *,
        res_type: str | None = None,
        res_id: str | None = None,
        query: str | None = None,
        operation: str | None = None,
    ) -> Iterator[Note]:
        note = Note(res_id=res_id)
        try:
            yield note
        except MedweaveError as exc:
            self._write(principal, interaction, exc.status, note, res_type, query, operation)
            raise
        except Exception:
            self._write(principal, interaction, 500, note, res_type, query, operation)
            raise
        self._write(principal, interaction, note.status, note, res_type, query, operation)

    def _write(
        self,
        principal: Principal,
        interaction: str,
        status: int,
        note: Note,
        res_type: str | None,
        query: str | None,
        operation: str | None,
    ) -> None:
        if self.audit is None:
            return
        actor = Actor(who=principal.audit_ref, address=principal.address, client_id=principal.client_id)
        self.audit.record_all(
            [
                rest_event(
                    interaction,
                    status=status,
                    actor=actor,
                    resource_type=res_type,
                    resource_id=note.res_id,
                    version_id=str(note.version_id) if note.version_id else None,
                    patient_id=patient,
                    query=query if patient is None else None,  # see _subjects
                    operation=operation,
                    break_glass_reason="break-glass access" if patient in principal.break_glass else None,
                )
                for patient in _subjects(note.patients, query)
            ]
        )


def _subjects(patients: set[str], query: str | None) -> list[str | None]:
    """One event per patient, plus one without a patient that carries the query, if any.

    A query string may name other people (``subject=Patient/a,Patient/b``, ``name=...``), so it
    never goes on an event that lands in one patient's "who looked at my record".
    """
    subjects: list[str | None] = list(sorted(patients))
    if query is not None or not subjects:
        subjects.append(None)
    return subjects
