"""The print lab: requests, studies, design iterations, exports and the clinician's decision.

``PrintLab`` is the one service the pages, the CLI and the worker use. Requests are here; who may
work on a request and the sealed files are in ``lab``, studies and scans in ``intake``, design
iterations and the decision in ``designs``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from medweave.db import read_tx, write_tx
from medweave.errors import Gone, InvalidInput, NotFound, PermissionDenied
from medweave.printing import pipeline, resources
from medweave.printing.designs import DESIGN_DEFAULTS, OPEN, Designs
from medweave.printing.intake import Intake
from medweave.printing.lab import LabConfig, utc_now
from medweave.printing.tables import print_designs, print_inputs, print_requests
from medweave.security.principal import Principal, Role

__all__ = ["DESIGN_DEFAULTS", "OPEN", "LabConfig", "PrintLab"]


class PrintLab(Intake, Designs):
    # -- requests -------------------------------------------------------------------------------
    def create_request(self, *, principal: Principal, patient_id: str, kind: str, note: str = "") -> str:
        if principal.role != Role.CLINICIAN:
            raise PermissionDenied("only clinicians request printed parts")
        if kind not in resources.KINDS:
            raise InvalidInput(f"unknown kind {kind!r}; use one of {', '.join(resources.KINDS)}")
        requester = f"Practitioner/{principal.practitioner_id}" if principal.practitioner_id else None
        body = resources.service_request(
            patient_id=patient_id, requester=requester, kind=kind, note=note[:2000]
        )
        stored = self.records.create(principal=principal, res_type="ServiceRequest", data=body)
        with write_tx(self.engine) as conn:
            conn.execute(
                print_requests.insert().values(
                    id=stored.res_id,
                    patient_id=patient_id,
                    kind=kind,
                    status="active",
                    created_at=utc_now(),
                    created_by=principal.subject,
                )
            )
        return stored.res_id

    def worklist(self, principal: Principal, *, status: str = "active") -> list[dict[str, Any]]:
        """Requests with their latest design; a clinician sees those of patients they may read."""
        self.require_lab(principal)
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(print_requests)
                .where(print_requests.c.status == status)
                .order_by(print_requests.c.created_at)
            ).all()
            designs = conn.execute(
                select(print_designs.c.request_id, print_designs.c.status, print_designs.c.iteration)
                .where(print_designs.c.request_id.in_([r.id for r in rows]))
                .order_by(print_designs.c.iteration)
            ).all()
        latest = {d.request_id: d for d in designs}
        out = []
        for row in rows:
            if principal.role == Role.CLINICIAN:
                try:
                    self.records.read(principal=principal, res_type="ServiceRequest", res_id=row.id)
                except (NotFound, Gone):
                    continue
            d = latest.get(row.id)
            out.append(
                {
                    "id": row.id,
                    "patient_id": row.patient_id,
                    "kind": row.kind,
                    "status": row.status,
                    "created_at": row.created_at,
                    "design": d.status if d else None,
                    "iteration": d.iteration if d else 0,
                }
            )
        return out

    def request_detail(self, principal: Principal, request_id: str) -> dict[str, Any]:
        row = self.open_request(principal, request_id)
        reader = self.lab_principal(principal.subject)
        body = self.records.read(principal=reader, res_type="ServiceRequest", res_id=request_id).body or {}
        with read_tx(self.engine) as conn:
            inputs = conn.execute(
                select(print_inputs)
                .where(print_inputs.c.request_id == request_id)
                .order_by(print_inputs.c.created_at)
            ).all()
            designs = conn.execute(
                select(print_designs)
                .where(print_designs.c.request_id == request_id)
                .order_by(print_designs.c.iteration)
            ).all()
        return {
            "row": row,
            "request": body,
            "inputs": [self._input_dict(i) for i in inputs],
            "designs": [self._design_dict(d) for d in designs],
        }

    # -- the design job (it reads the study through intake and settles through designs) ----
    def run_design(
        self,
        design_id: str,
        *,
        progress: pipeline.Progress | None = None,
        cancelled: pipeline.Cancelled | None = None,
    ) -> dict[str, Any]:
        """The job body: make the part, check it, export it, record it on the patient."""
        from medweave.printing.runner import DesignRun

        return DesignRun(self, design_id).run(progress=progress, cancelled=cancelled)
