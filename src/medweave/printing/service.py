"""The print lab: requests, studies, design iterations, exports and the clinician's decision.

Who may do what (the record store's access rules still decide every record read and write):

- A clinician asks for a part for a patient in their care: a ``ServiceRequest`` written with
  their own credentials, so the store checks the care relationship and audits it.
- Lab technicians see the open requests and work on them: attach a study (upload or PACS pull),
  run designs, download files. Lab technicians read no patient records on their own (records
  ``access``); the lab reaches a request's patient only through this service, which reads and
  writes as ``internal:print-lab/<user>``, so each access is audited under the technician's name
  and is limited to patients with an open print request.
- A clinician may open the requests of patients they may read (checked by reading the
  ``ServiceRequest`` with their own credentials) and approve or reject a design.

Files (the study as received, the meshes, the slice preview) live under ``DATA_DIR/print``
sealed with the patient's data key (AES-256-GCM, bound to their name), so they are unreadable at
rest and crypto-shredded with the patient.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from medweave.config import Settings
from medweave.db import read_tx, write_tx
from medweave.errors import Conflict, Gone, InvalidInput, NotFound, PermissionDenied
from medweave.jobs import JobClient, JobState
from medweave.printing import pipeline, previews, resources
from medweave.printing.tables import print_designs, print_inputs, print_requests
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role

LAB_ROLES = (Role.LAB_TECHNICIAN, Role.CLINICIAN)
STUDY_SUFFIXES = (".zip", ".dcm", ".nii", ".nii.gz")
SCAN_SUFFIXES = (".stl", ".ply", ".obj")
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


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _suffix(name: str) -> str:
    lower = name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else Path(lower).suffix


@dataclass(frozen=True)
class LabConfig:
    data_dir: Path
    max_bytes: int
    pacs_url: str | None
    printers_file: Path | None
    printer: str

    @classmethod
    def from_settings(cls, settings: Settings) -> LabConfig:
        return cls(
            data_dir=settings.data_dir,
            max_bytes=settings.print_max_volume_mb * 1024 * 1024,
            pacs_url=settings.pacs_url,
            printers_file=settings.printers_file,
            printer=settings.print_printer,
        )


class PrintLab:
    def __init__(self, records: RecordService, config: LabConfig):
        self.records = records
        self.engine = records.engine
        self.config = config
        self.root = config.data_dir / "print"
        self._lock = threading.Lock()
        self._previews: dict[str, dict[str, Any]] = {}  # design id -> decrypted slice stacks, oldest first

    # -- who ------------------------------------------------------------------------------------
    @staticmethod
    def lab_principal(user: str) -> Principal:
        return Principal.internal(f"print-lab/{user}")

    def require_lab(self, principal: Principal) -> None:
        if principal.role not in LAB_ROLES:
            raise PermissionDenied("the print lab is for lab technicians and clinicians")

    def _request_row(self, request_id: str) -> Any:
        with read_tx(self.engine) as conn:
            row = conn.execute(select(print_requests).where(print_requests.c.id == request_id)).first()
        if row is None:
            raise NotFound("no such print request")
        return row

    def open_request(self, principal: Principal, request_id: str, *, write: bool = False) -> Any:
        """The request's row, if ``principal`` may work on it (else 404, as for a missing one).

        Clinicians read the ``ServiceRequest`` with their own credentials; to change anything
        (``write``) they must also be allowed to write the patient's record, so read-only
        break-glass access does not let them write through the lab. Lab technicians reach it
        only while the ``ServiceRequest`` itself is active: revoked, completed, entered in error
        or deleted through the FHIR API, it closes to the lab at once.
        """
        self.require_lab(principal)
        row = self._request_row(request_id)
        if principal.role == Role.CLINICIAN:
            self.records.read(principal=principal, res_type="ServiceRequest", res_id=request_id)
            if write:
                self.records.require_writer(principal=principal, patient_id=row.patient_id)
            return row
        if row.status != "active":
            raise NotFound("no such print request")
        try:
            sr = self.records.read(
                principal=self.lab_principal(principal.subject), res_type="ServiceRequest", res_id=request_id
            )
            status = (sr.body or {}).get("status")
        except (NotFound, Gone):
            status = "deleted"
        if status != "active":
            with write_tx(self.engine) as conn:
                conn.execute(
                    update(print_requests)
                    .where(print_requests.c.id == request_id)
                    .values(status=str(status)[:16])
                )
            raise NotFound("no such print request")
        return row

    # -- files ----------------------------------------------------------------------------------
    def _write(self, patient_id: str, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sealed = self.records.seal_for_patient(patient_id=patient_id, data=data, aad=f"print/{name}".encode())
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(sealed)
        tmp.replace(path)

    def _read(self, patient_id: str, name: str) -> bytes:
        path = self.root / name
        if not path.is_file():
            raise NotFound("no such file")
        return self.records.open_for_patient(
            patient_id=patient_id, blob=path.read_bytes(), aad=f"print/{name}".encode()
        )

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
                    created_at=_now(),
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

    def _input_dict(self, i: Any) -> dict[str, Any]:
        text = self._open_text(i.patient_id, f"input/{i.id}", i.summary)
        return {**dict(i._mapping), "summary": json.loads(text or "{}")}

    def input_summary(self, input_id: str) -> dict[str, Any]:
        """What was read from an attached study (for the design job)."""
        with read_tx(self.engine) as conn:
            i = conn.execute(select(print_inputs).where(print_inputs.c.id == input_id)).first()
        if i is None:
            raise NotFound("no such study")
        return self._input_dict(i)["summary"]

    # -- inputs ---------------------------------------------------------------------------------
    def attach_upload(self, principal: Principal, request_id: str, *, filename: str, data: bytes) -> str:
        """A DICOM zip or file, or a NIfTI file (CT or MRI), or for a splint a limb scan."""
        row = self.open_request(principal, request_id, write=True)
        suffix = _suffix(filename)
        allowed = SCAN_SUFFIXES if row.kind == "splint" else STUDY_SUFFIXES
        if suffix not in allowed:
            raise InvalidInput(f"upload a {' or '.join(allowed)} file for this request")
        if len(data) > self.config.max_bytes:
            raise InvalidInput("the upload is larger than the print lab's limit")
        return self._attach(principal, row, suffix=suffix, data=data)

    def attach_files(self, principal: Principal, request_id: str, *, files: list[tuple[str, bytes]]) -> str:
        """Several files of one DICOM folder (a browser's folder upload), kept together as a zip."""
        if len(files) == 1:
            return self.attach_upload(principal, request_id, filename=files[0][0], data=files[0][1])
        row = self.open_request(principal, request_id, write=True)
        if row.kind == "splint":
            raise InvalidInput("upload one limb scan for a splint")
        if sum(len(data) for _, data in files) > self.config.max_bytes:
            raise InvalidInput("the upload is larger than the print lab's limit")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for n, (name, data) in enumerate(files):
                zf.writestr(f"{n:05d}-{Path(name).name or 'file'}", data)
        return self._attach(principal, row, suffix=".zip", data=buf.getvalue())

    def attach_from_pacs(
        self, principal: Principal, request_id: str, *, study_uid: str, series_uid: str | None
    ) -> str:
        from medweave.printing.pacs import pull_study

        row = self.open_request(principal, request_id, write=True)
        if not self.config.pacs_url:
            raise InvalidInput("no PACS is configured (MEDWEAVE_PACS_URL)")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "study"
            pull_study(
                self.config.pacs_url, study_uid.strip(), out, series_uid=(series_uid or "").strip() or None
            )
            pulled = sorted(f for f in out.rglob("*") if f.is_file())
            if sum(f.stat().st_size for f in pulled) > self.config.max_bytes:
                raise InvalidInput("the study is larger than the print lab's limit; pull one series")
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
                for f in pulled:
                    zf.write(f, f.relative_to(out).as_posix())
        return self._attach(principal, row, suffix=".zip", data=buf.getvalue())

    def _attach(self, principal: Principal, row: Any, *, suffix: str, data: bytes) -> str:
        """Check the upload, store it sealed with its row, then record the ImagingStudy; a failure
        at any step leaves neither file, row nor record behind."""
        input_id = f"in_{secrets.token_hex(8)}"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"input{suffix}"
            path.write_bytes(data)
            summary, study = self._inspect(row, path)
        name = f"{row.id}/{input_id}{suffix}"
        sealed_summary = self._seal_text(row.patient_id, f"input/{input_id}", json.dumps(summary))
        self._write(row.patient_id, name, data)
        try:
            with write_tx(self.engine) as conn:
                conn.execute(
                    print_inputs.insert().values(
                        id=input_id,
                        request_id=row.id,
                        patient_id=row.patient_id,
                        kind="scan" if row.kind == "splint" else "study",
                        name=name,
                        imaging_study_id=None,
                        summary=sealed_summary,
                        created_at=_now(),
                        created_by=principal.subject,
                    )
                )
            if study is not None:
                body = resources.imaging_study(patient_id=row.patient_id, source=study, request_id=row.id)
                lab = self.lab_principal(principal.subject)
                imaging_study_id = self.records.create(
                    principal=lab, res_type="ImagingStudy", data=body
                ).res_id
                with write_tx(self.engine) as conn:
                    conn.execute(
                        update(print_inputs)
                        .where(print_inputs.c.id == input_id)
                        .values(imaging_study_id=imaging_study_id)
                    )
        except BaseException:
            with write_tx(self.engine) as conn:
                conn.execute(print_inputs.delete().where(print_inputs.c.id == input_id))
            (self.root / name).unlink(missing_ok=True)
            raise
        return input_id

    def _seal_text(self, patient_id: str, what: str, text: str) -> str:
        """Text about a patient kept in the lab's tables (study UIDs, a clinician's reason), sealed
        under their key so that erasing them shreds it too."""
        blob = self.records.seal_for_patient(
            patient_id=patient_id, data=text.encode(), aad=f"print:{what}".encode()
        )
        return base64.b64encode(blob).decode("ascii")

    def _open_text(self, patient_id: str, what: str, sealed: str | None) -> str | None:
        if not sealed:
            return None
        blob = base64.b64decode(sealed)
        return self.records.open_for_patient(
            patient_id=patient_id, blob=blob, aad=f"print:{what}".encode()
        ).decode()

    def _inspect(self, row: Any, path: Path) -> tuple[dict[str, Any], Any]:
        if row.kind == "splint":
            from medweave.printing.meshio import read_mesh, require_closed

            mesh = read_mesh(path)
            require_closed(mesh)  # a splint is built around a closed scan: say so now, not in the job
            return {"format": path.suffix[1:], "triangles": mesh.n_triangles}, None
        volume = self._load(path, row.kind)
        src = volume.source
        summary = {
            "format": _suffix(path.name)[1:],
            "modality": src.modality or "unknown",
            "shape": list(volume.shape),
            "spacing_mm": [round(s, 3) for s in volume.spacing],
            "study_uid": src.study_uid,
            "series_uid": src.series_uid,
            "instances": len(src.sop_instance_uids),
            "notes": list(src.notes),
        }
        return summary, (src if src.series_uid else None)

    def _load(self, path: Path, kind: str) -> Any:
        from medweave.printing.load import load_volume

        modalities = frozenset({"CT"}) if kind == "implant" else frozenset({"CT", "MR"})
        return load_volume(path, max_bytes=self.config.max_bytes, modalities=modalities)

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
            if job is not None or (_now() - _aware(other.created_at)).total_seconds() > UNQUEUED_GRACE_S:
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
                        created_at=_now(),
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
                    decided_at=_now(),
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
