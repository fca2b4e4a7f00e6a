"""Background jobs with stored progress: bulk import now, meshing and training later.

The embedded default runs each job on a thread of the calling process (:class:`JobRunner`);
the state lives in the ``jobs`` table, so a page or a second process can follow it. A later
queue-backed runner (Redis/PostgreSQL workers) keeps the same table and states.
"""

from medweave.jobs.runner import JobCancelled, JobContext, JobInfo, JobRunner
from medweave.jobs.tables import TERMINAL_STATES, JobState, jobs

__all__ = ["TERMINAL_STATES", "JobCancelled", "JobContext", "JobInfo", "JobRunner", "JobState", "jobs"]
