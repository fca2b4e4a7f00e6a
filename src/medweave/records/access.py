"""Who may read and write which records: every access rule of the record store, in one place.

Rules (issue 3, "Access rules, in one place"):

- A token's SMART scopes bound everything its holder does, whatever the role: no scope for the
  type and operation is a 403, before any record is looked at.
- ``system/`` scopes (backend clients, the operator's CLI) see every patient; they are audited
  like anyone else.
- A patient sees their own compartment and writes only what a patient may write:
  QuestionnaireResponse and Appointment (answers and bookings), in their own compartment.
- Clinicians and therapists see the patients in their care (see ``care``), or with an active
  Consent naming them, or under break-glass; they may write only the records of patients in
  their care (a Consent discloses a record, it does not make the reader a treating clinician).
- Break-glass (time-limited, with a reason, flagged for review; granted by the identity service)
  opens a patient's record for reading only.
- Admins, lab technicians and data scientists read no patient data except under break-glass.
  Two domain services act for them, under an internal principal that names the person, so each
  access is audited as theirs: the print lab (``internal:print-lab/<user>``, only for patients
  with an open print request, ``printing.service``) and the de-identified ML extract
  (``internal:ml-extract/<user>``, ``diagnostics.clinic_data``).
- Erasing a patient (crypto-shredding) is for the operator at the command line only.
- Resources outside every patient compartment (Practitioner, Questionnaire, Schedule, ...) are
  readable by every signed-in caller whose scopes allow it; only some roles may write them.
- A resource the caller may not see answers exactly like a missing one (404), so nothing leaks
  about existence. Searches, includes, history, totals and ``$everything`` are filtered by the
  same SQL condition, so they cannot reveal what a read would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, false, literal, or_, select, true

from medweave.db import DriverQuery
from medweave.errors import NotFound, PermissionDenied
from medweave.records.care import CARE_PARAM, CONSENT_PARAM
from medweave.records.definitions import compartment_params
from medweave.records.tables import search_index
from medweave.security.principal import CARE_ROLES, Principal, Role

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PATIENT_WRITABLE = frozenset({"QuestionnaireResponse", "Appointment"})
#: Types outside patient compartments each role may create, update or delete.
SHARED_WRITABLE: dict[Role, frozenset[str]] = {
    Role.CLINICIAN: frozenset({"Schedule", "Slot", "Questionnaire", "Device"}),
    Role.THERAPIST: frozenset({"Schedule", "Slot", "Questionnaire"}),
    Role.LAB_TECHNICIAN: frozenset({"Device"}),
    Role.ADMIN: frozenset(
        {"Practitioner", "PractitionerRole", "Schedule", "Slot", "Questionnaire", "Device"}
    ),
}
#: Only integrations and the operator write audit records through the API.
SYSTEM_ONLY_WRITES = frozenset({"AuditEvent"})


@dataclass(frozen=True)
class View:
    """What one principal may see for one resource type and operation."""

    everything: bool
    patients: frozenset[str]  # explicitly visible patients (own, launch context, break-glass)
    practitioner_id: str | None  # plus the patients in this practitioner's care
    shared: bool  # resources outside every patient compartment
    only: frozenset[str] | None = None  # a patient-context token: never beyond its launch patient
    consent: bool = True  # a permitting Consent opens the record too (reading; writing needs care)

    def condition(
        self, patient_col: ColumnElement[str | None], *, now: datetime | None = None
    ) -> ColumnElement[bool]:
        """SQL: is a row whose owning patient is ``patient_col`` visible?"""
        if self.everything:
            return true()
        parts: list[ColumnElement[bool]] = []
        if self.patients:
            parts.append(patient_col.in_(sorted(self.patients)))
        if self.practitioner_id:
            parts.append(
                patient_col.in_(in_care_patients(self.practitioner_id, now=now, consent=self.consent))
            )
        owned = or_(*parts) if parts else false()
        if self.only is not None:
            owned = and_(owned, patient_col.in_(sorted(self.only))) if self.only else false()
        return or_(patient_col.is_(None), owned) if self.shared else owned


def in_care_patients(
    practitioner_id: str, *, now: datetime | None = None, consent: bool = True
) -> ColumnElement[str]:
    """SQL subquery: the ids of the patients in this practitioner's care (and, with ``consent``,
    of those whose active Consent permits them access)."""
    si = search_index
    now_us = ((now or datetime.now(UTC)) - _EPOCH) // timedelta(microseconds=1)
    roles = select(si.c.res_id).where(
        si.c.res_type == "PractitionerRole",
        si.c.param == "practitioner",
        si.c.ref_type == "Practitioner",
        si.c.ref_id == practitioner_id,
    )
    names_me = or_(
        and_(si.c.ref_type == "Practitioner", si.c.ref_id == practitioner_id),
        and_(si.c.ref_type == "PractitionerRole", si.c.ref_id.in_(roles)),
    )
    in_force = or_(si.c.param == CARE_PARAM, and_(si.c.lo <= literal(now_us), si.c.hi > literal(now_us)))
    return (
        select(si.c.patient_id)
        .where(
            si.c.param.in_([CARE_PARAM, CONSENT_PARAM] if consent else [CARE_PARAM]),
            names_me,
            in_force,
            si.c.patient_id.is_not(None),
        )
        .scalar_subquery()
    )


def view(principal: Principal, res_type: str, op: str) -> View:
    """The rows ``principal`` may ``op`` (read or search) in ``res_type``; 403 if scopes forbid it."""
    contexts = principal.scopes.contexts_for(res_type, op)
    if not contexts:
        raise PermissionDenied(f"the access token's scopes do not allow {op} on {res_type}")
    if is_system(principal, res_type, op):
        return View(True, frozenset(), None, True)
    glass = principal.break_glass
    if principal.role == Role.PATIENT:
        own = frozenset({principal.patient_id}) if principal.patient_id else frozenset()
        return View(False, own, None, True)
    in_care = principal.practitioner_id if principal.role in CARE_ROLES else None
    if "user" not in contexts:  # only patient/ scopes: the launch patient, within what the user may see
        launch = frozenset({principal.patient_id}) if principal.patient_id else frozenset()
        return View(False, glass, in_care, True, only=launch)
    return View(False, glass, in_care, principal.kind == "user")


def is_system(principal: Principal, res_type: str, op: str) -> bool:
    """A backend client or the operator acting with ``system/`` scopes: no patient restriction."""
    return principal.kind in ("client", "internal") and "system" in principal.scopes.contexts_for(
        res_type, op
    )


def can_see(conn: Connection, v: View, patient_id: str | None) -> bool:
    if v.everything:
        return True
    if patient_id is None:
        return v.shared
    if v.only is not None and patient_id not in v.only:
        return False
    if patient_id in v.patients:
        return True
    if v.practitioner_id is None:
        return False
    return in_care_of(conn, v.practitioner_id, patient_id, consent=v.consent)


# One statement, run on the driver (``DriverQuery``): this runs on every read of a patient's
# record, and through SQLAlchemy its execution cost several times the query. Keyed on the patient
# (index ``ix_search_care``), so it reads only that patient's few care rows however large the
# clinic; a row may name the practitioner or one of their PractitionerRoles (``ix_search_ref``).
# With ``consent`` off, ``:consent`` is bound to the care parameter, so only care rows count.
_IN_CARE = DriverQuery(
    """
    SELECT 1 FROM search_index c
    WHERE c.patient_id = :patient AND c.param IN (:care, :consent)
      AND (c.param = :care OR (c.lo <= :now AND c.hi > :now))
      AND (
        (c.ref_type = 'Practitioner' AND c.ref_id = :practitioner)
        OR (c.ref_type = 'PractitionerRole' AND c.ref_id IN (
          SELECT r.res_id FROM search_index r
          WHERE r.param = 'practitioner' AND r.ref_id = :practitioner
            AND r.ref_type = 'Practitioner' AND r.res_type = 'PractitionerRole'))
      )
    LIMIT 1
    """
)


def in_care_of(
    conn: Connection, practitioner_id: str, patient_id: str, *, consent: bool, now: datetime | None = None
) -> bool:
    """Is this one patient in the practitioner's care (or, with ``consent``, consented to them)?

    The per-patient form of :func:`in_care_patients`; the access matrix holds the two to the
    same answers.
    """
    now_us = ((now or datetime.now(UTC)) - _EPOCH) // timedelta(microseconds=1)
    params = {
        "patient": patient_id,
        "practitioner": practitioner_id,
        "care": CARE_PARAM,
        "consent": CONSENT_PARAM if consent else CARE_PARAM,
        "now": now_us,
    }
    return _IN_CARE.first(conn, params) is not None


def require_readable(
    conn: Connection, principal: Principal, res_type: str, res_id: str, patient_id: str | None
) -> None:
    """404 — the same answer as for a missing resource — unless ``principal`` may read it."""
    if not can_see(conn, view(principal, res_type, "read"), patient_id):
        raise NotFound(f"{res_type}/{res_id} is not known")


def require_operator(principal: Principal, what: str) -> None:
    """Some operations (crypto-shredding a patient) belong to the operator at the command line only."""
    if principal.kind != "internal":
        raise PermissionDenied(f"only the operator may {what}")


def require_scope(principal: Principal, res_type: str, op: str) -> None:
    """403 unless the caller's scopes allow ``op`` on ``res_type`` at all."""
    if not principal.scopes.allows(res_type, op):
        raise PermissionDenied(f"the access token's scopes do not allow {op} on {res_type}")


def may_ever(principal: Principal, res_type: str, op: str) -> None:
    """403 unless some resource of ``res_type`` could be ``op``-ed by this principal.

    Decided from the scopes and the role alone, never from a record, so it can be answered before
    looking anything up (a delete of a hidden and of a missing resource then answer alike).
    """
    require_scope(principal, res_type, op)
    if is_system(principal, res_type, op):
        return
    role = principal.role
    if res_type in SYSTEM_ONLY_WRITES or role is None:
        raise PermissionDenied(
            f"{res_type} is written by the server only" if role else "this caller may not write"
        )
    if res_type in SHARED_WRITABLE.get(role, frozenset()):
        return
    in_compartment = res_type == "Patient" or bool(compartment_params(res_type))
    if role == Role.PATIENT and res_type in PATIENT_WRITABLE and op != "delete":
        return
    if role in CARE_ROLES and in_compartment:
        return
    raise PermissionDenied(f"a {role.value} may not {op} {res_type}")


def require_writable(
    conn: Connection,
    principal: Principal,
    *,
    res_type: str,
    res_id: str,
    op: str,
    old_patient: str | None,
    new_patient: str | None,
    exists: bool,
    put: bool = False,
    fresh_patients: frozenset[str] = frozenset(),
) -> None:
    """Raise unless ``principal`` may ``op`` (create, update, delete) this resource.

    ``old_patient`` owns the stored version (if ``exists``), ``new_patient`` the one being
    written. ``fresh_patients`` are Patients created earlier in the same transaction, so
    registration can create a patient and the CareTeam that puts them in care at once.
    ``put`` marks an update that would create a missing id: only system callers may choose ids,
    and for anyone else it answers exactly like a PUT to a resource they may not see (404).
    """
    if not principal.scopes.allows(res_type, op):
        raise PermissionDenied(f"the access token's scopes do not allow {op} on {res_type}")
    if exists:  # an existing resource the caller cannot see answers like a missing one
        require_readable(conn, principal, res_type, res_id, old_patient)
    contexts = principal.scopes.contexts_for(res_type, op)
    if is_system(principal, res_type, op):
        return
    if put and not exists:
        raise NotFound(f"{res_type}/{res_id} is not known")
    if res_type in SYSTEM_ONLY_WRITES:
        raise PermissionDenied(f"{res_type} is written by the server only")
    role = principal.role
    if role is None:
        raise PermissionDenied("this caller may not write records")
    owners = {p for p in (old_patient if exists else None, new_patient) if p is not None}
    if not owners:
        if res_type in SHARED_WRITABLE.get(role, frozenset()) or (res_type == "Patient" and op == "create"):
            return
        raise PermissionDenied(f"a {role.value} may not {op} {res_type}")
    if role == Role.PATIENT:
        if res_type in PATIENT_WRITABLE and op != "delete" and owners == {principal.patient_id}:
            return
        raise PermissionDenied(f"a patient may not {op} {res_type} here")
    if role not in CARE_ROLES:
        raise PermissionDenied(f"a {role.value} may not write patient records")
    if res_type == "Patient" and op == "create" and not exists:
        return  # registration: a new id nobody has records under yet
    care = View(False, frozenset(fresh_patients), principal.practitioner_id, False, consent=False)
    owners_ok = all(can_see(conn, care, p) for p in owners)
    if "user" not in contexts:  # a patient-context token writes only for its launch patient
        owners_ok = owners_ok and owners == {principal.patient_id}
    if not owners_ok:
        raise PermissionDenied(f"{res_type} belongs to a patient who is not in your care")
