"""The print lab's designs: iterations run as jobs, their files, and the clinician's decision.

A design is queued, runs (``runner.DesignRun``, as a ``print.design`` job), and ends ready, failed
or cancelled; a ready design is approved or rejected by a clinician who may write the patient's
record. One design of a request runs at a time, and a design whose job died or was never queued
is settled so it cannot hold its request.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from medweave.db import read_tx, write_tx
from medweave.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from medweave.jobs import JobClient, JobState
from medweave.printing import previews
from medweave.printing.lab import LabCore, as_aware, utc_now
from medweave.printing.tables import print_designs, print_inputs, print_requests
from medweave.security.principal import Principal, Role

DESIGN_DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"preset": "bone", "iso": None, "hi": None, "seeds": []},
    "implant": {"margin_mm": 2.0, "thickness_mm": None},
    "splint": {"thickness_mm": 3.0, "clearance_mm": 1.0, "vent_diameter_mm": 6.0},
}
OPEN = ("queued", "running")
#: Decrypted slice previews kept in memory (up to ~20 MB each for a 512x512x300 CT), for the viewer.
PREVIEWS_KEPT = 4
#: A design with no job this long after it was created was never queued (the enqueue failed).
UNQUEUED_GRACE_S = 60.0


class Designs(LabCore):
    # -- designs --------------------------------------------------------------------------------
    def _design_dict(self, d: Any) -> dict[str, Any]:
        out = dict(d._mapping)
        out["decision_reason"] = self._open_text(d.patient_id, f"decision/{d.id}", d.decision_reason)
        for key in ("params", "summary", "report", "files"):
            out[key] = json.loads(out[key]) if out.get(key) else None
        return out

    def design(self, principal: Principal, design_id: str) -> dict[str, Any]:
        with read_tx(self.engine) as conn:
            d = conn.execute(select(print_designs).where(print_designs.c.id == design_id)).first()
        if d is None:
            raise NotFound("no such design")
        self.open_request(principal, d.request_id)
        return self._design_dict(d)

    def job_of(self, design: dict[str, Any] | Any) -> Any | None:
        """The design's job as stored, or None if it has none (or it is gone)."""
        job_id = design["job_id"] if isinstance(design, dict) else design.job_id
        if not job_id:
            return None
        try:
            return JobClient(self.engine).get(job_id)
        except NotFound:
            return None

    def start_design(
        self, principal: Principal, request_id: str, *, input_id: str, params: dict[str, Any]
    ) -> str:
        row = self.open_request(principal, request_id, write=True)
        allowed = DESIGN_DEFAULTS[row.kind]
        merged = {**allowed, **{k: v for k, v in params.items() if k in allowed}}
        design_id = f"pd_{secrets.token_hex(8)}"
        with read_tx(self.engine) as conn:
            stale = conn.execute(
                select(print_designs.c.id, print_designs.c.job_id, print_designs.c.created_at).where(
                    print_designs.c.request_id == request_id, print_designs.c.status.in_(OPEN)
                )
            ).all()
        for other in stale:  # a design whose job is over, or that never got one, no longer blocks
            job = self.job_of(other)
            if job is not None or (utc_now() - as_aware(other.created_at)).total_seconds() > UNQUEUED_GRACE_S:
                self.settle(other.id, job)
        try:
            with write_tx(self.engine) as conn:
                found = conn.execute(
                    select(print_inputs.c.id).where(
                        print_inputs.c.id == input_id, print_inputs.c.request_id == request_id
                    )
                ).first()
                if found is None:
                    raise InvalidInput("choose a study or scan attached to this request")
                busy = conn.execute(
                    select(print_designs.c.id).where(
                        print_designs.c.request_id == request_id, print_designs.c.status.in_(OPEN)
                    )
                ).first()
                if busy is not None:
                    raise Conflict("a design of this request is still running")
                last = conn.execute(
                    select(print_designs.c.iteration)
                    .where(print_designs.c.request_id == request_id)
                    .order_by(print_designs.c.iteration.desc())
                ).first()
                conn.execute(
                    print_designs.insert().values(
                        id=design_id,
                        request_id=request_id,
                        patient_id=row.patient_id,
                        input_id=input_id,
                        kind=row.kind,
                        iteration=(last.iteration if last else 0) + 1,
                        status="queued",
                        params=json.dumps(merged),
                        created_at=utc_now(),
                        created_by=principal.subject,
                    )
                )
        except IntegrityError:  # another design of this request was started at the same moment
            raise Conflict("a design of this request was started at the same time") from None
        return design_id

    def keep_component(self, principal: Principal, design_id: str, *, i: int, j: int, k: int) -> str:
        """A new iteration of a model that keeps the component under a click on its slice preview
        (preview pixel ``i``, ``j`` of slice ``k``), with those it already kept."""
        d = self.design(principal, design_id)
        step = int((d["summary"] or {}).get("preview_step") or 0)
        if d["kind"] != "model" or not step:
            raise InvalidInput("only a finished model's slices can be clicked to keep a component")
        params = dict(d["params"] or {})
        seeds = [list(s) for s in params.get("seeds") or []]
        seeds.append([i * step, j * step, k])
        params["seeds"] = seeds
        return self.start_design(principal, d["request_id"], input_id=d["input_id"], params=params)

    def attach_job(self, design_id: str, job_id: str) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(update(print_designs).where(print_designs.c.id == design_id).values(job_id=job_id))

    def _claim(self, design_id: str) -> bool:
        """queued -> running; False if the design was cancelled (or settled) meanwhile."""
        with write_tx(self.engine) as conn:
            done = conn.execute(
                update(print_designs)
                .where(print_designs.c.id == design_id, print_designs.c.status.in_(OPEN))
                .values(status="running", error=None)
            )
        return done.rowcount == 1

    def _end(self, design_id: str, **values: Any) -> bool:
        """Move an open design to its end state; False if it had already ended (never overwrite a
        cancel with a result, or a result with a cancel)."""
        with write_tx(self.engine) as conn:
            done = conn.execute(
                update(print_designs)
                .where(print_designs.c.id == design_id, print_designs.c.status.in_(OPEN))
                .values(**values)
            )
        return done.rowcount == 1

    def _finish(self, design_id: str, **values: Any) -> bool:
        return self._end(design_id, status="ready", **values)

    def settle(self, design_id: str, job: Any | None) -> None:
        """Bring an open design in line with its job: a job that failed or was cancelled without
        the design knowing (its worker died, an admin cancelled it while queued), or a design
        whose job was never queued, ends too, so it cannot hold its request forever."""
        if job is None:
            self._end(design_id, status="failed", error="the design was never queued; start it again")
        elif job.state == JobState.CANCELLED:
            self._end(design_id, status="cancelled")
        elif job.state in (JobState.FAILED, JobState.DONE):
            self._end(
                design_id, status="failed", error=job.error or "the design's job ended without a result"
            )

    def cancel_design(self, design_id: str) -> None:
        self._end(design_id, status="cancelled")

    # -- decision -------------------------------------------------------------------------------
    def decide(self, principal: Principal, design_id: str, *, approve: bool, reason: str) -> None:
        """A clinician who may write the patient's record approves or rejects a ready design.

        The design's row is claimed first (ready -> approved/rejected, only while its request is
        open), so two decisions cannot both go through; then the Device and the ServiceRequest
        are updated, as that clinician.
        """
        if principal.role != Role.CLINICIAN:
            raise PermissionDenied("only a clinician approves or rejects a design")
        d = self.design(principal, design_id)
        self.records.require_writer(principal=principal, patient_id=d["patient_id"])
        reason = reason.strip()[:2000]
        if not approve and not reason:
            raise InvalidInput("say why the design is rejected")
        # Sealed before the transaction: sealing reads the patient's key in a transaction of its own.
        sealed = self._seal_text(d["patient_id"], f"decision/{design_id}", reason) if reason else None
        with write_tx(self.engine) as conn:
            open_request = select(print_requests.c.id).where(
                print_requests.c.id == d["request_id"], print_requests.c.status == "active"
            )
            done = conn.execute(
                update(print_designs)
                .where(
                    print_designs.c.id == design_id,
                    print_designs.c.status == "ready",
                    print_designs.c.request_id.in_(open_request.scalar_subquery()),
                )
                .values(
                    status="approved" if approve else "rejected",
                    decided_at=utc_now(),
                    decided_by=principal.subject,
                    decision_reason=sealed,
                )
            )
            if done.rowcount != 1:
                raise Conflict("only a finished design of an open request, not yet decided, can be decided")
            if approve:
                conn.execute(
                    update(print_requests)
                    .where(print_requests.c.id == d["request_id"])
                    .values(status="completed")
                )
        if d["device_id"]:
            dev = self.records.read(principal=principal, res_type="Device", res_id=d["device_id"])
            body = dict(dev.body or {})
            if approve:
                body["status"] = "active"
            verdict = "Approved" if approve else "Rejected"
            body.setdefault("note", []).append({"text": f"{verdict}: {reason}" if reason else verdict})
            self.records.update(principal=principal, res_type="Device", res_id=d["device_id"], data=body)
        if approve:
            sr = self.records.read(principal=principal, res_type="ServiceRequest", res_id=d["request_id"])
            self.records.update(
                principal=principal,
                res_type="ServiceRequest",
                res_id=d["request_id"],
                data={**(sr.body or {}), "status": "completed"},
            )

    # -- reading files --------------------------------------------------------------------------
    def file(self, principal: Principal, design_id: str, name: str) -> bytes:
        d = self.design(principal, design_id)
        known = {f["name"] for f in d["files"] or []} | {"context.stl"}
        if name not in known:
            raise NotFound("no such file")
        return self._read(d["patient_id"], f"{d['request_id']}/{design_id}/{name}")

    def slice_png(self, principal: Principal, design_id: str, k: int, layer: str) -> bytes:
        d = self.design(principal, design_id)  # access is checked on every call, cached or not
        with self._lock:
            preview = self._previews.get(design_id)
        if preview is None:
            preview = previews.load(self._read(d["patient_id"], f"{d['request_id']}/{design_id}/preview.npz"))
            with self._lock:  # the viewer asks for many slices in a row: keep the last few stacks
                self._previews[design_id] = preview
                while len(self._previews) > PREVIEWS_KEPT:
                    self._previews.pop(next(iter(self._previews)))
        return previews.slice_png(preview, k, layer)
