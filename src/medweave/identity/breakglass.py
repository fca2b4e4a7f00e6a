"""Break-glass: time-limited emergency access by a staff member to one patient, flagged for review.

A grant needs a stated reason (at least 10 characters) and lasts 1 minute to 4 hours; it ends
early when its holder ends it. Every grant stays "pending review" until an admin other than its
holder reviews it with a note. The caller writes the AuditEvents (``audit.break_glass_event``)
from the Grant returned here. The access layer learns of live grants through
``Principal.break_glass``, filled by ``active_patient_ids`` in one indexed query.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, select, update

from medweave.db import read_tx, write_tx
from medweave.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from medweave.identity.core import Core, aware, user_from_row
from medweave.identity.model import Grant
from medweave.identity.policy import check_minutes, check_reason
from medweave.identity.tables import break_glass_grants as bg
from medweave.identity.tables import users
from medweave.security.principal import Role

_FHIR_ID_MAX = 64


def active_patient_ids(conn: Connection, user_id: str, at: datetime) -> frozenset[str]:
    """The patients ``user_id`` holds a live grant for (index ``ix_break_glass_user_expires``)."""
    query = select(bg.c.patient_id).where(bg.c.user_id == user_id, bg.c.expires > at, bg.c.ended.is_(None))
    return frozenset(conn.execute(query.distinct()).scalars())


class BreakGlass(Core):
    def start_break_glass(
        self, *, user_id: str, patient_id: str, reason: str, minutes: int = 60, now: datetime | None = None
    ) -> Grant:
        """Open a grant; only an enabled staff user may. Audit it with ``break_glass_event``."""
        at = aware(now)
        text, length = check_reason(reason), check_minutes(minutes)
        if not 0 < len(patient_id) <= _FHIR_ID_MAX:
            raise InvalidInput("patient id is missing or too long", expression=["patient"])
        grant_id = str(uuid.uuid4())
        with write_tx(self.engine) as conn:
            user = user_from_row(self._user_row(conn, user_id))
            if not user.is_staff or user.disabled:
                raise PermissionDenied("only staff may use break-glass access")
            conn.execute(
                bg.insert().values(
                    id=grant_id,
                    user_id=user_id,
                    patient_id=patient_id,
                    reason=text,
                    started=at,
                    expires=at + length,
                )
            )
            return _one(conn, grant_id)

    def end_break_glass(
        self, grant_id: str, *, user_id: str | None = None, now: datetime | None = None
    ) -> Grant:
        """End a grant now (by its holder, or an admin when ``user_id`` names one); idempotent."""
        at = aware(now)
        with write_tx(self.engine) as conn:
            grant = _one(conn, grant_id)
            if user_id is not None and user_id != grant.user_id:
                actor = user_from_row(self._user_row(conn, user_id))
                if actor.role != Role.ADMIN:
                    raise PermissionDenied("only the holder or an admin may end a break-glass grant")
            if grant.active(at):
                conn.execute(update(bg).where(bg.c.id == grant_id, bg.c.ended.is_(None)).values(ended=at))
            return _one(conn, grant_id)

    def get_grant(self, grant_id: str) -> Grant:
        with read_tx(self.engine) as conn:
            return _one(conn, grant_id)

    def active_grants(self, user_id: str, *, now: datetime | None = None) -> list[Grant]:
        at = aware(now)
        query = _grants().where(bg.c.user_id == user_id, bg.c.expires > at, bg.c.ended.is_(None))
        with read_tx(self.engine) as conn:
            return [_grant(r) for r in conn.execute(query.order_by(bg.c.started))]

    def pending_reviews(self) -> list[Grant]:
        """Every grant no admin has reviewed yet, oldest first: the admin's review queue."""
        query = _grants().where(bg.c.reviewed_at.is_(None)).order_by(bg.c.started, bg.c.id)
        with read_tx(self.engine) as conn:
            return [_grant(r) for r in conn.execute(query)]

    def review(self, grant_id: str, *, reviewer_id: str, note: str, now: datetime | None = None) -> Grant:
        """Close the review of a grant: an enabled admin who is not the grant's holder, with a note."""
        text = " ".join(note.split())
        if not text:
            raise InvalidInput("a review needs a note", expression=["note"])
        with write_tx(self.engine) as conn:
            reviewer = user_from_row(self._user_row(conn, reviewer_id))
            grant = _one(conn, grant_id)
            if reviewer.role != Role.ADMIN or reviewer.disabled:
                raise PermissionDenied("only an admin may review break-glass access")
            if reviewer.id == grant.user_id:
                raise PermissionDenied("break-glass access must be reviewed by another admin")
            done = conn.execute(
                update(bg)
                .where(bg.c.id == grant_id, bg.c.reviewed_at.is_(None))
                .values(reviewed_by=reviewer_id, reviewed_at=aware(now), review_note=text)
            ).rowcount
            if done != 1:
                raise Conflict("this break-glass grant has already been reviewed")
            return _one(conn, grant_id)


def _grants() -> Select[Any]:
    return select(bg, users.c.username).join(users, users.c.id == bg.c.user_id)


def _one(conn: Connection, grant_id: str) -> Grant:
    row = conn.execute(_grants().where(bg.c.id == grant_id)).first()
    if row is None:
        raise NotFound(f"no break-glass grant {grant_id}")
    return _grant(row)


def _grant(row: Row[Any]) -> Grant:
    return Grant(
        id=row.id,
        user_id=row.user_id,
        username=row.username,
        patient_id=row.patient_id,
        reason=row.reason,
        started=row.started,
        expires=row.expires,
        ended=row.ended,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        review_note=row.review_note,
    )
