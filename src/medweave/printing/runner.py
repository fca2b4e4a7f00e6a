"""One design iteration as a background job: make, check, export, record.

The steps run in this order, and the design's row moves queued -> running -> ready (or failed,
or cancelled). Nothing is recorded on the patient until every file is written and checked: the
Device and its DocumentReferences are created last, so a failed or cancelled run leaves no
half-written record (its sealed files, if any, are removed).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from medweave.db import read_tx
from medweave.errors import MedweaveError
from medweave.printing import pipeline, previews, resources
from medweave.printing.tables import print_designs, print_inputs

if TYPE_CHECKING:
    from medweave.printing.service import PrintLab

log = logging.getLogger(__name__)


class DesignRun:
    def __init__(self, lab: PrintLab, design_id: str):
        self.lab = lab
        self.design_id = design_id

    def run(
        self, *, progress: pipeline.Progress | None, cancelled: pipeline.Cancelled | None
    ) -> dict[str, Any]:
        with read_tx(self.lab.engine) as conn:
            d = conn.execute(select(print_designs).where(print_designs.c.id == self.design_id)).first()
            if d is None:
                raise MedweaveError("the design to run is gone")
            source = conn.execute(select(print_inputs).where(print_inputs.c.id == d.input_id)).first()
        if d.status not in ("queued", "running"):
            return {"design": self.design_id, "status": d.status}
        if not self.lab._claim(self.design_id):
            return {"design": self.design_id, "status": "cancelled"}
        folder = f"{d.request_id}/{self.design_id}"
        try:
            result = self._run(d, source, folder, progress, cancelled)
        except pipeline.Stopped:
            self._discard(folder)
            self.lab._end(self.design_id, status="cancelled")
            raise
        except MedweaveError as exc:
            self._discard(folder)
            self.lab._end(self.design_id, status="failed", error=exc.message)
            return {"design": self.design_id, "status": "failed", "error": exc.message}
        except Exception:
            self._discard(folder)
            self.lab._end(
                self.design_id, status="failed", error="the design could not be made (see the server log)"
            )
            raise
        return result

    def _discard(self, folder: str) -> None:
        shutil.rmtree(self.lab.root / folder, ignore_errors=True)

    def _run(self, d: Any, source: Any, folder: str, progress: Any, cancelled: Any) -> dict[str, Any]:
        from medweave.printing.checks import check
        from medweave.printing.printers import load_printers

        params = json.loads(d.params)
        blob = self.lab._read(d.patient_id, source.name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(source.name).name
            path.write_bytes(blob)
            del blob
            volume = None
            if d.kind == "splint":
                from medweave.printing.meshio import read_mesh

                part = pipeline.make_splint(
                    read_mesh(path), options=params, progress=progress, cancelled=cancelled
                )
            else:
                volume = self.lab._load(path, d.kind)
                if d.kind == "implant":
                    part = pipeline.make_implant(
                        volume,
                        margin_mm=float(params["margin_mm"]),
                        thickness_mm=None
                        if params.get("thickness_mm") in (None, "")
                        else float(params["thickness_mm"]),
                        with_skull=True,
                        progress=progress,
                        cancelled=cancelled,
                    )
                else:
                    iso = params.get("iso")
                    seeds = [(int(i), int(j), int(k)) for i, j, k in params.get("seeds") or []]
                    part = pipeline.make_model(
                        volume,
                        preset=str(params["preset"]),
                        iso=None if iso in (None, "") else float(iso),
                        hi=None if params.get("hi") in (None, "") else float(params["hi"]),
                        seeds=seeds or None,
                        progress=progress,
                        cancelled=cancelled,
                    )
            if cancelled is not None and cancelled():
                raise pipeline.Stopped()
            catalog = load_printers(self.lab.config.printers_file)
            printer = catalog.printer(self.lab.config.printer)
            report = check(part.mesh, printer=printer, catalog=catalog)
            # The file names the device and its iteration only: the study and series UIDs identify
            # the patient's scan (DICOM PS3.15 E.1) and stay on the record (Device -> ImagingStudy).
            identifier = f"urn:uuid:{uuid.uuid4()}"
            files = []
            for fmt in ("stl", "3mf"):
                out = Path(tmp) / f"part.{fmt}"
                done = pipeline.export(part, out, device_identifier=identifier, iteration=d.iteration)
                self.lab._write(d.patient_id, f"{folder}/part.{fmt}", out.read_bytes())
                files.append(
                    {"format": fmt, "name": f"part.{fmt}", "sha256": done.sha256, "bytes": done.bytes}
                )
            if part.context is not None:
                ctx_path = Path(tmp) / "context.stl"
                from medweave.printing.export import write_stl

                write_stl(part.context, ctx_path)
                self.lab._write(d.patient_id, f"{folder}/context.stl", ctx_path.read_bytes())
            if volume is not None:
                self.lab._write(
                    d.patient_id, f"{folder}/preview.npz", previews.make_preview(volume, part.mask)
                )
        if cancelled is not None and cancelled():
            raise pipeline.Stopped()
        out_summary = part.summary()
        out_summary["printer"] = printer.name
        out_summary["preview_slices"] = volume.shape[0] if volume is not None else None
        out_summary["preview_focus"] = previews.focus_slice(part.mask)
        out_summary["preview_step"] = previews.step_for(volume) if volume is not None else None
        values = {
            "summary": json.dumps(out_summary, default=str),
            "report": json.dumps(report.to_json(), default=str),
        }
        created: list[tuple[str, str]] = []
        try:
            device_id = self._record(d, source, part, identifier, files, created)
            if not self.lab._finish(self.design_id, files=json.dumps(files), device_id=device_id, **values):
                raise pipeline.Stopped()  # cancelled meanwhile: the records go, as below
        except BaseException:
            self._withdraw(d, created)
            raise
        return {"design": self.design_id, "status": "ready", "passed": report.passed, "device": device_id}

    def _withdraw(self, d: Any, created: list[tuple[str, str]]) -> None:
        """Mark what a failed run had recorded as entered in error (FHIR's way to retract), so
        no Device or DocumentReference points at files that were removed."""
        lab = self.lab.lab_principal(d.created_by)
        for res_type, res_id in reversed(created):
            try:
                stored = self.lab.records.read(principal=lab, res_type=res_type, res_id=res_id)
                body = {**(stored.body or {}), "status": "entered-in-error"}
                self.lab.records.update(principal=lab, res_type=res_type, res_id=res_id, data=body)
            except MedweaveError:
                log.warning("could not withdraw a record of design %s", self.design_id)

    def _record(
        self,
        d: Any,
        source: Any,
        part: pipeline.Part,
        identifier: str,
        files: list[dict[str, Any]],
        created: list[tuple[str, str]],
    ) -> str:
        """The Device (every parameter, the source study and series) and one DocumentReference
        per file (its SHA-256), written as the lab user; the store audits both."""
        lab = self.lab.lab_principal(d.created_by)
        summary = self.lab.input_summary(source.id)
        body = resources.device(
            patient_id=d.patient_id,
            kind=d.kind,
            identifier=identifier,
            iteration=d.iteration,
            params=part.params,
            imaging_study_id=source.imaging_study_id,
            series_uid=summary.get("series_uid") or None,
            request_id=d.request_id,
        )
        device_id = self.lab.records.create(principal=lab, res_type="Device", data=body).res_id
        created.append(("Device", device_id))
        for f in files:
            doc = resources.document_reference(
                patient_id=d.patient_id,
                device_id=device_id,
                imaging_study_id=source.imaging_study_id,
                fmt=f["format"],
                url=f"/print/designs/{self.design_id}/files/{f['name']}",
                sha256=f["sha256"],
                size=f["bytes"],
                title=f"{resources.KINDS[d.kind]}, iteration {d.iteration} ({f['format'].upper()})",
            )
            f["document"] = self.lab.records.create(
                principal=lab, res_type="DocumentReference", data=doc
            ).res_id
            created.append(("DocumentReference", f["document"]))
        return device_id
