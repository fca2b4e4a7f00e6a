"""A real Orthanc PACS (Debian's binary, DICOMweb plugin on) on loopback, for the PACS tests.

``orthanc`` is a module-scoped fixture: a fresh Orthanc with its storage in a temp folder, HTTP and
DICOM on free ports, no authentication (loopback only), our AE title ``MEDWEAVE`` known as a modality
so C-GET/C-MOVE are allowed. It is stopped at the end of the module.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
OUR_AET = "MEDWEAVE"
ORTHANC_AET = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Orthanc:
    http_port: int
    dicom_port: int
    log: Path

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.rest}/dicom-web"

    @property
    def dimse(self) -> str:
        return f"dicom://{ORTHANC_AET}@127.0.0.1:{self.dicom_port}?calling={OUR_AET}"


def orthanc_binary() -> str:
    found = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    if not found:
        raise RuntimeError("Debian's orthanc package is not installed (no Orthanc binary)")
    return found


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextmanager
def running_orthanc(root: Path) -> Iterator[Orthanc]:
    """Start Orthanc with its config and storage under ``root``; stop it on exit."""
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "MedweaveTest",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False},
        "DicomModalities": {"medweave": [OUR_AET, "127.0.0.1", free_port()]},
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomCheckModalityHost": False,
        "SaveJobs": False,
        "StableAge": 1,
    }
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=2))
    log = root / "orthanc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([orthanc_binary(), str(cfg)], stdout=out, stderr=subprocess.STDOUT, cwd=root)
    server = Orthanc(http_port, dicom_port, log)
    try:
        deadline = time.monotonic() + 60
        while not _up(f"{server.rest}/system"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Orthanc did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
