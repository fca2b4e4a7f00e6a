"""The print lab's intake: studies (DICOM upload, folder, zip, NIfTI, PACS pull) and limb scans.

Each input is checked in full before anything is kept (a volume is assembled, a scan must be
closed), then stored sealed with its row and, for a study, an ``ImagingStudy`` on the record; a
failure at any step leaves neither file, row nor record behind.
"""

from __future__ import annotations

import io
import json
import secrets
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from medweave.db import read_tx, write_tx
from medweave.errors import InvalidInput, NotFound
from medweave.printing import resources
from medweave.printing.lab import LabCore, file_suffix, utc_now
from medweave.printing.tables import print_inputs
from medweave.security.principal import Principal

STUDY_SUFFIXES = (".zip", ".dcm", ".nii", ".nii.gz")
SCAN_SUFFIXES = (".stl", ".ply", ".obj")


class Intake(LabCore):
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
        suffix = file_suffix(filename)
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
                        created_at=utc_now(),
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

    def _inspect(self, row: Any, path: Path) -> tuple[dict[str, Any], Any]:
        if row.kind == "splint":
            from medweave.printing.meshio import read_mesh, require_closed

            mesh = read_mesh(path)
            require_closed(mesh)  # a splint is built around a closed scan: say so now, not in the job
            return {"format": path.suffix[1:], "triangles": mesh.n_triangles}, None
        volume = self._load(path, row.kind)
        src = volume.source
        summary = {
            "format": file_suffix(path.name)[1:],
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
