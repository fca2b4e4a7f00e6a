"""The page routes: sign-in, patient home, staff patients and charts, admin, jobs, break-glass.

Each audience's pages live in ``medweave.web.pages``; this router gathers them for ``create_app``.
"""

from __future__ import annotations

from fastapi import APIRouter

from medweave.web.pages import (
    admin,
    authorize,
    breakglass,
    clinic,
    clinician,
    jobs,
    ml,
    patient,
    signin,
    therapy,
    visits,
)

router = APIRouter()
for _pages in (signin, patient, clinician, admin, jobs, breakglass, authorize, visits, clinic, therapy, ml):
    router.include_router(_pages.router)
