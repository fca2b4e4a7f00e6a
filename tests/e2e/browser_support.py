"""Helpers of the browser tests: the live server's handle, seeding, screenshots."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

# The seeded clinic of the page tests (tests/web/pages_support.py) is the browser tests' too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))

from pages_support import Clinic

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Live:
    url: str
    clinic: Clinic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def earlier_look(clinic: Clinic) -> None:
    """The clinician opens Alice's record before she signs in (what her access history must show)."""
    token, _csrf = clinic.identity.create_session(clinic.user_ids["grey"], mfa=True)
    session = clinic.identity.load_session(token)
    assert session is not None
    principal = clinic.identity.principal_for_session(session)
    clinic.records.read(principal=principal, res_type="Patient", res_id=clinic.patient_id)
    clinic.identity.end_session(token)


def shot(tab: Any, name: str, *, docs: bool = False, full_page: bool = False) -> Path:
    """Save a screenshot as a test artifact; copy the README's ones to docs/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=full_page)
    target = DOCS / f"{name}.png"
    if docs and (os.environ.get("MEDWEAVE_UPDATE_SCREENSHOTS") == "1" or not target.exists()):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return path


@contextmanager
def serving(app: Any, port: int) -> Iterator[None]:
    """The app under uvicorn on 127.0.0.1:``port``, in a thread, for the length of the block."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright (never a downloaded browser); fails if it is missing."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (never a downloaded browser)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def seeded_clinic(tmp: Path) -> tuple[Clinic, Any, int]:
    """The page tests' clinic on a fresh SQLite database in ``tmp``, for a server on a free port:
    the clinic, its engine (dispose it afterwards) and the port."""
    from pages_support import build_clinic

    from medweave.audit import AuditService
    from medweave.db import make_engine
    from medweave.migrate import upgrade
    from medweave.records.service import RecordService
    from medweave.security.crypto import MasterKey

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine = make_engine(f"sqlite:///{tmp / 'medweave.db'}")
    upgrade(engine)
    records = RecordService(
        engine=engine, master=MasterKey.generate(), base_url=f"{url}/fhir", audit=AuditService(engine)
    )
    return build_clinic(records, tmp, base_url=url, enrolled=("grey",)), engine, port
