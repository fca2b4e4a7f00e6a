"""Read-only listing of recent jobs, for the admin page that follows them.

Kept apart from :mod:`medweave.jobs.store` (which owns every write): it only reads the ``jobs``
table, newest first, through the same row-to-:class:`JobInfo` mapping.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from medweave.db import read_tx
from medweave.jobs.store import JobInfo
from medweave.jobs.store import _info as to_info
from medweave.jobs.tables import jobs

#: The most jobs one listing returns, whatever is asked.
MAX_LIMIT = 500


def list_jobs(engine: Engine, limit: int = 50) -> list[JobInfo]:
    """The ``limit`` most recently submitted jobs, newest first."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(jobs).order_by(jobs.c.created.desc(), jobs.c.id).limit(limit)
    with read_tx(engine) as conn:
        rows = conn.execute(query).all()
    return [to_info(row) for row in rows]
