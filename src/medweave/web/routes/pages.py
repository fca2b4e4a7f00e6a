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
    printing,
    signin,
    therapy,
    visits,
)

router = APIRouter()
_ALL = (signin, patient, clinician, admin, jobs, breakglass, authorize, visits, clinic, therapy, ml, printing)
for _pages in _ALL:
    router.include_router(_pages.router)
