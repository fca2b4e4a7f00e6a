"""The print lab's core: who may work on a request, and the sealed files and notes of the lab.

Who may do what (the record store's access rules still decide every record read and write):

- A clinician asks for a part for a patient in their care: a ``ServiceRequest`` written with
  their own credentials, so the store checks the care relationship and audits it.
- Lab technicians see the open requests and work on them: attach a study (upload or PACS pull),
  run designs, download files. Lab technicians read no patient records on their own (records
  ``access``); the lab reaches a request's patient only through the lab's services, which read and
  write as ``internal:print-lab/<user>``, so each access is audited under the technician's name
  and is limited to patients with an open print request.
- A clinician may open the requests of patients they may read (checked by reading the
  ``ServiceRequest`` with their own credentials) and approve or reject a design.

Files (the study as received, the meshes, the slice preview) live under ``DATA_DIR/print``
sealed with the patient's data key (AES-256-GCM, bound to their name), so they are unreadable at
rest and crypto-shredded with the patient. ``intake`` (studies and scans), ``designs`` (iterations,
exports, the decision) and ``service`` (requests; the ``PrintLab`` that joins them) build on this.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from medweave.config import Settings
from medweave.db import read_tx, write_tx
from medweave.errors import Gone, NotFound, PermissionDenied
from medweave.printing.tables import print_requests
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role

LAB_ROLES = (Role.LAB_TECHNICIAN, Role.CLINICIAN)


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def file_suffix(name: str) -> str:
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


class LabCore:
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
