"""No lost update: 20 clients race to change one Patient through a real HTTP server.

Each client reads the Patient, adds its own identifier and PUTs it back with ``If-Match``; on 412
it reads again and retries. Every version must be won by exactly one PUT, and the final resource
must hold all 20 changes. Runs on SQLite and PostgreSQL against uvicorn on a free local port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from conftest import BASE, TOKEN_SECRET, bearer
from medweave.config import Settings
from medweave.records.service import RecordService
from medweave.web.app import create_app
from medweave.web.auth import Authenticator

CLIENTS = 20
SYSTEM = "urn:medweave:test:client"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_url(records: RecordService, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    app = create_app(
        Settings(data_dir=tmp_path / "data", base_url=f"http://127.0.0.1:{port}"),
        records=records,
        authenticator=Authenticator(secret=TOKEN_SECRET, issuer="http://testserver", audience=BASE),
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/fhir"
    server.should_exit = True
    thread.join(timeout=10)


def test_concurrent_if_match_updates_lose_nothing(server_url: str) -> None:
    with httpx.Client(base_url=server_url, timeout=60, headers=bearer()) as setup:
        r = setup.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Race"}]})
        assert r.status_code == 201, r.text
        pid = r.json()["id"]

    barrier = threading.Barrier(CLIENTS)
    lock = threading.Lock()
    outcomes: list[tuple[int, str | None, dict]] = []  # (status, versionId of a win, body)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with httpx.Client(base_url=server_url, timeout=60, headers=bearer()) as http:
                barrier.wait(timeout=30)
                for _ in range(200):
                    cur = http.get(f"/Patient/{pid}")
                    assert cur.status_code == 200, cur.text
                    body = cur.json()
                    body.setdefault("identifier", []).append({"system": SYSTEM, "value": f"client-{n}"})
                    r = http.put(f"/Patient/{pid}", json=body, headers={"If-Match": cur.headers["etag"]})
                    won = r.json()["meta"]["versionId"] if r.status_code == 200 else None
                    with lock:
                        outcomes.append((r.status_code, won, r.json()))
                    if r.status_code == 200:
                        return
                    assert r.status_code == 412, r.text
                raise AssertionError(f"client {n} never won a version")
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors

    statuses = Counter(status for status, _, _ in outcomes)
    assert set(statuses) <= {200, 412}, statuses
    wins = Counter(vid for status, vid, _ in outcomes if status == 200)
    assert wins == Counter({str(v): 1 for v in range(2, CLIENTS + 2)}), wins
    for status, _, body in outcomes:
        if status == 412:
            assert body["resourceType"] == "OperationOutcome"
            assert body["issue"][0]["severity"] == "error"

    with httpx.Client(base_url=server_url, timeout=60, headers=bearer()) as http:
        final = http.get(f"/Patient/{pid}")
        assert final.status_code == 200
        assert final.json()["meta"]["versionId"] == str(1 + CLIENTS)
        assert final.headers["etag"] == f'W/"{1 + CLIENTS}"'
        values = [i["value"] for i in final.json()["identifier"] if i["system"] == SYSTEM]
        assert sorted(values) == sorted(f"client-{n}" for n in range(CLIENTS))
        history = http.get(f"/Patient/{pid}/_history", params={"_count": 100}).json()
        assert history["total"] == 1 + CLIENTS
        versions = sorted(int(e["response"]["etag"][3:-1]) for e in history["entry"])
        assert versions == list(range(1, CLIENTS + 2))
    print(f"\n{len(outcomes)} PUTs: {statuses[200]} won, {statuses[412]} answered 412")
