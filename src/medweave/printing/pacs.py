"""Talk to a PACS: DICOMweb (QIDO-RS, WADO-RS, STOW-RS) or DIMSE (C-ECHO, C-FIND, C-GET, C-STORE).

A PACS is named by a URL: ``http(s)://host:port/dicom-web`` for DICOMweb (PS3.18), through
dicomweb-client, or ``dicom://CALLED_AET@host:port?calling=OURAET`` for DIMSE (PS3.4, PS3.7), through
pynetdicom. ``pull_study`` writes a study's instances as ``<SOPInstanceUID>.dcm`` into a temporary
folder next to the target and renames it into place only when everything arrived, so a failed pull
never leaves a partial folder.

Rules: UIDs used as file names must match the PS3.5 section 9.1 UID form (digits and dots, no
leading zeros in a component, at most 64 characters); AE titles are 1 to 16 characters with no
backslash (PS3.5 section 6.2, VR AE). C-GET asks the PACS to send the images back on the same
association, so we propose the CT and MR storage SOP classes with the SCP role (PS3.4 C.4.3,
PS3.7 D.3.3.4 SCP/SCU role selection).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from pydicom.dataset import Dataset

from medweave.errors import InvalidInput, NotFound

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
DEFAULT_CALLING_AET = "MEDWEAVE"
TIMEOUT_S = 30.0

# Image storage SOP classes we accept on C-GET (PS3.4 B.5).
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
)
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
)


def is_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and bool(UID_RE.match(value))


@dataclass(frozen=True)
class Pacs:
    protocol: str  # "dicomweb" or "dimse"
    url: str = ""  # DICOMweb base URL
    host: str = ""
    port: int = 0
    called_aet: str = ""
    calling_aet: str = DEFAULT_CALLING_AET

    @property
    def where(self) -> str:
        """The PACS as named in messages: no user name or password, even if the URL has them."""
        if self.protocol != "dicomweb":
            return f"{self.called_aet}@{self.host}:{self.port}"
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_aet(aet: str) -> str:
    if (
        not 1 <= len(aet) <= 16
        or "\\" in aet
        or not aet.isascii()
        or not aet.isprintable()
        or not aet.strip()
    ):
        raise InvalidInput("An AE title must be 1 to 16 printable ASCII characters without a backslash.")
    return aet


def parse_pacs(pacs: str) -> Pacs:
    """``http(s)://host:port/path`` or ``dicom://AET@host:port[?calling=AET]``; InvalidInput otherwise."""
    try:
        parts = urlsplit(pacs)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput("The PACS address is not a valid URL.") from exc
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidInput("The DICOMweb address has no host.")
        return Pacs("dicomweb", url=pacs.rstrip("/"))
    if parts.scheme == "dicom":
        if not parts.hostname or port is None or not parts.username:
            raise InvalidInput("A DIMSE PACS address reads dicom://CALLED_AET@host:port.")
        calling = parse_qs(parts.query).get("calling", [DEFAULT_CALLING_AET])[0]
        return Pacs(
            "dimse",
            host=parts.hostname,
            port=port,
            called_aet=_check_aet(unquote(parts.username)),
            calling_aet=_check_aet(calling),
        )
    raise InvalidInput("The PACS address must start with http://, https:// or dicom://.")


def _check_uid(uid: str, what: str) -> None:
    if not is_uid(uid):
        raise InvalidInput(f"The {what} is not a valid DICOM UID.")


# --- DICOMweb -----------------------------------------------------------------------------------


@contextmanager
def _http_errors(pacs: Pacs) -> Iterator[None]:
    import requests

    try:
        yield
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        if code == 404:
            raise NotFound(f"The PACS at {pacs.where} has no such resource.") from exc
        raise InvalidInput(f"The PACS at {pacs.where} answered HTTP {code}.") from exc
    except requests.RequestException as exc:
        raise InvalidInput(f"The PACS at {pacs.where} cannot be reached.") from exc


def _client(pacs: Pacs) -> Any:
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(pacs.url, timeout=TIMEOUT_S)
    # Its default retries every failure, refused connections too, with back-off (about 30 s).
    client.set_http_retry_params(retry=False)
    return client


def _tag(item: dict[str, Any], tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


# --- DIMSE --------------------------------------------------------------------------------------


@contextmanager
def _association(
    pacs: Pacs,
    contexts: Sequence[tuple[str, Sequence[str]]],
    *,
    scp_roles: bool = False,
    handlers: list[Any] | None = None,
) -> Iterator[Any]:
    from pynetdicom import AE, build_role

    ae = AE(ae_title=pacs.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    roles: list[Any] = []
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, list(syntaxes))
    if scp_roles:
        roles = [build_role(c, scp_role=True) for c in STORAGE_CLASSES]
    try:
        # Probe first: pynetdicom logs and leaks a socket when the connection is refused.
        socket.create_connection((pacs.host, pacs.port), timeout=TIMEOUT_S).close()
        assoc = ae.associate(
            pacs.host, pacs.port, ae_title=pacs.called_aet, ext_neg=roles or None, evt_handlers=handlers or []
        )
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"The PACS at {pacs.where} cannot be reached.") from exc
    if not assoc.is_established:
        reason = "rejected the association" if assoc.is_rejected else "cannot be reached"
        raise InvalidInput(f"The PACS at {pacs.where} {reason}.")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def echo(pacs_url: str) -> None:
    """C-ECHO (DIMSE) or a one-study QIDO-RS query (DICOMweb); InvalidInput if the PACS fails."""
    pacs = parse_pacs(pacs_url)
    if pacs.protocol == "dicomweb":
        with _http_errors(pacs):
            _client(pacs).search_for_studies(limit=1)
        return
    with _association(pacs, [("1.2.840.10008.1.1", TRANSFER_SYNTAXES[:2])]) as assoc:
        status = assoc.send_c_echo()
    if not status or status.Status != 0x0000:
        raise InvalidInput(f"The PACS at {pacs.where} did not answer the C-ECHO.")


def search_series(pacs_url: str, study_uid: str) -> list[dict[str, Any]]:
    """The series of a study: ``series_uid``, ``modality``, ``instances``, ``description``."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FindModel  # type: ignore[attr-defined]

    pacs = parse_pacs(pacs_url)
    _check_uid(study_uid, "study UID")
    found: list[dict[str, Any]] = []
    if pacs.protocol == "dicomweb":
        with _http_errors(pacs):
            items = _client(pacs).search_for_series(study_instance_uid=study_uid) or []
        for item in items:
            count = _tag(item, "00201209")
            found.append(
                {
                    "series_uid": str(_tag(item, "0020000E") or ""),
                    "modality": str(_tag(item, "00080060") or ""),
                    "instances": int(count) if count is not None else None,
                    "description": str(_tag(item, "0008103E") or ""),
                }
            )
        return [s for s in found if s["series_uid"]]
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.SeriesDescription = ""
    query.NumberOfSeriesRelatedInstances = ""
    with _association(pacs, [(FindModel, TRANSFER_SYNTAXES[:2])]) as assoc:
        for status, ident in assoc.send_c_find(query, FindModel):
            if not status:
                raise InvalidInput(f"The PACS at {pacs.where} did not answer the C-FIND.")
            if status.Status in (0xFF00, 0xFF01) and ident is not None:
                count = ident.get("NumberOfSeriesRelatedInstances")
                found.append(
                    {
                        "series_uid": str(ident.get("SeriesInstanceUID", "")),
                        "modality": str(ident.get("Modality", "")),
                        "instances": int(count) if count not in (None, "") else None,
                        "description": str(ident.get("SeriesDescription", "")),
                    }
                )
            elif status.Status not in (0x0000, 0xFF00, 0xFF01):
                raise InvalidInput(
                    f"The PACS at {pacs.where} refused the C-FIND (status 0x{status.Status:04X})."
                )
    return [s for s in found if s["series_uid"]]


def store(pacs_url: str, datasets: Sequence[Dataset]) -> int:
    """Send datasets by STOW-RS or C-STORE; the number stored, or InvalidInput if any failed."""
    pacs = parse_pacs(pacs_url)
    if not datasets:
        return 0
    if pacs.protocol == "dicomweb":
        with _http_errors(pacs):
            _client(pacs).store_instances(list(datasets))
        return len(datasets)
    contexts: dict[str, set[str]] = {}
    for ds in datasets:
        contexts.setdefault(str(ds.SOPClassUID), set()).add(str(ds.file_meta.TransferSyntaxUID))
    with _association(pacs, [(k, sorted(v)) for k, v in contexts.items()]) as assoc:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if not status or status.Status not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise InvalidInput(f"The PACS at {pacs.where} did not store an instance.")
    return len(datasets)


# --- Pull ---------------------------------------------------------------------------------------


def _pull_dicomweb(pacs: Pacs, study_uid: str, series: list[str], folder: Path) -> int:
    client = _client(pacs)
    n = 0
    with _http_errors(pacs):
        for series_uid in series:
            # transfer-syntax=*: as stored. Orthanc cannot transcode JPEG 2000 (PS3.18 8.7.3.5.2).
            for ds in client.iter_series(study_uid, series_uid, media_types=(("application/dicom", "*"),)):
                uid = str(ds.get("SOPInstanceUID", ""))
                _check_uid(uid, "SOP instance UID sent by the PACS")
                ds.save_as(folder / f"{uid}.dcm", enforce_file_format=True)
                n += 1
    return n


def _pull_dimse(pacs: Pacs, study_uid: str, series: list[str], folder: Path) -> int:
    from pynetdicom import evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GetModel  # type: ignore[attr-defined]

    received: list[str] = []

    def on_store(event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if not is_uid(uid):
            return 0xC211  # refused: not a UID we can name a file after
        (folder / f"{uid}.dcm").write_bytes(event.encoded_dataset())
        received.append(uid)
        return 0x0000

    # One presentation context per (class, transfer syntax), so the PACS can send each instance as
    # stored: Orthanc cannot transcode JPEG 2000, and picks only one syntax per context.
    contexts: list[tuple[str, Sequence[str]]] = [(GetModel, TRANSFER_SYNTAXES[:2])]
    contexts += [(c, (ts,)) for c in STORAGE_CLASSES for ts in TRANSFER_SYNTAXES]
    with _association(pacs, contexts, scp_roles=True, handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
        for series_uid in series:
            query = Dataset()
            query.QueryRetrieveLevel = "SERIES"
            query.StudyInstanceUID = study_uid
            query.SeriesInstanceUID = series_uid
            final = None
            for status, _ident in assoc.send_c_get(query, GetModel):
                if not status:
                    raise InvalidInput(f"The PACS at {pacs.where} did not answer the C-GET.")
                final = status
            if final is None or final.Status != 0x0000:
                code = f"0x{final.Status:04X}" if final is not None else "none"
                raise InvalidInput(
                    f"The PACS at {pacs.where} did not send every instance (C-GET status {code})."
                )
    return len(received)


def pull_study(pacs: str, study_uid: str, out_dir: Path, *, series_uid: str | None = None) -> dict[str, Any]:
    """Fetch a study (or one of its series) into ``out_dir`` as ``<SOPInstanceUID>.dcm`` files."""
    where = parse_pacs(pacs)
    _check_uid(study_uid, "study UID")
    if series_uid is not None:
        _check_uid(series_uid, "series UID")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInput("The output folder already exists and is not empty.")
    found = search_series(pacs, study_uid)
    if series_uid is not None:
        found = [s for s in found if s["series_uid"] == series_uid]
    if not found:
        what = "series" if series_uid is not None else "study"
        raise NotFound(f"The PACS at {where.where} has no such {what}.")
    for s in found:
        _check_uid(s["series_uid"], "series UID sent by the PACS")
    uids = [s["series_uid"] for s in found]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        pull = _pull_dicomweb if where.protocol == "dicomweb" else _pull_dimse
        count = pull(where, study_uid, uids, tmp)
        if count == 0:
            raise NotFound(f"The PACS at {where.where} sent no instances for the study.")
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "protocol": where.protocol,
        "study_uid": study_uid,
        "series": [{"series_uid": s["series_uid"], "modality": s["modality"]} for s in found],
        "instances": count,
    }
