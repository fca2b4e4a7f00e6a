"""Print designs as background jobs: a queued design cancelled from its page (a real Redis queue with
no worker yet), a running design stopped between steps (nothing recorded, no files left), a splint
from an uploaded limb scan, and crypto-shredding of the lab's sealed files with the patient."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, csrf_of, enrol, sign_in
from sqlalchemy import select, update

from limb_support import forearm, write_stl
from medweave.cli.worker import job_kinds
from medweave.errors import Conflict, Gone, NotFound, PermissionDenied
from medweave.jobs import JobState, open_jobs
from medweave.printing import pipeline
from medweave.printing.tables import print_designs, print_inputs
from medweave.records.service import RecordService
from medweave.security.principal import ROLE_SCOPES, Principal, Role
from medweave.security.scopes import ScopeSet
from print_support import small_skull, write_phantom, zipped

OPERATOR = Principal.internal("test")
REDIS = "redis://127.0.0.1:6379/0"


def staff(clinic: Clinic, name: str, role: Role) -> Principal:
    return Principal(
        kind="user",
        subject=clinic.user_ids[name],
        scopes=ScopeSet.parse(ROLE_SCOPES[role]),
        role=role,
        practitioner_id=clinic.practitioner_id if role == Role.CLINICIAN else None,
    )


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    clinic = build_clinic(records, tmp_path)
    lab = clinic.identity.create_user(
        username="lab", role="lab_technician", password="correct horse battery staple"
    )
    clinic.user_ids["lab"] = lab.id
    clinic.secrets["lab"] = enrol(clinic.identity, lab.id)
    return clinic


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("ct")
    write_phantom(small_skull(), folder)
    return zipped(folder)


def _request_with_study(clinic: Clinic, study: bytes, kind: str = "model") -> tuple[str, str]:
    lab = clinic.app.state.print_lab
    request_id = lab.create_request(
        principal=staff(clinic, "grey", Role.CLINICIAN), patient_id=clinic.patient_id, kind=kind, note=""
    )
    input_id = lab.attach_upload(
        staff(clinic, "lab", Role.LAB_TECHNICIAN), request_id, filename="ct.zip", data=study
    )
    return request_id, input_id


@pytest.fixture
def queued_jobs(clinic: Clinic) -> Iterator[None]:
    """Jobs go to Redis, where no worker takes them: a started design stays queued."""
    jobs = open_jobs(
        clinic.records.engine,
        kinds=job_kinds(clinic.records, clinic.app.state.settings),
        broker=REDIS,
        namespace=f"medweave-test-{uuid.uuid4().hex[:8]}",
    )
    clinic.app.state.jobs = jobs
    yield
    jobs.close()


def test_a_queued_design_is_cancelled_from_its_page(clinic: Clinic, study: bytes, queued_jobs: None) -> None:
    request_id, input_id = _request_with_study(clinic, study)
    with TestClient(clinic.app, follow_redirects=False) as tech:
        sign_in(tech, clinic, "lab")
        page = tech.get(f"/print/requests/{request_id}").text
        r = tech.post(
            f"/print/requests/{request_id}/designs",
            data={"csrf_token": csrf_of(page), "input": input_id, "preset": "bone"},
        )
        design_id = r.headers["location"].rsplit("/", 1)[1]
        html = tech.get(f"/print/designs/{design_id}").text
        assert "waiting for a worker" in html and "Cancel the design" in html
        assert 'hx-get="/print/designs/' in html  # the progress polls while the job is active
        r = tech.post(f"/print/designs/{design_id}/cancel", data={"csrf_token": csrf_of(html)})
        assert r.status_code == 303
        html = tech.get(f"/print/designs/{design_id}").text
        assert re.search(r'id="design-status">cancelled<', html)
        assert "Cancel the design" not in html and "hx-get" not in html
        design = clinic.app.state.print_lab.design(staff(clinic, "lab", Role.LAB_TECHNICIAN), design_id)
        assert clinic.app.state.jobs.get(design["job_id"]).state == JobState.CANCELLED
        assert design["status"] == "cancelled" and design["device_id"] is None
        # A second design may start once nothing runs.
        page = tech.get(f"/print/requests/{request_id}").text
        r = tech.post(
            f"/print/requests/{request_id}/designs",
            data={"csrf_token": csrf_of(page), "input": input_id, "preset": "skin"},
        )
        assert r.status_code == 303
        assert (
            clinic.app.state.print_lab.design(
                staff(clinic, "lab", Role.LAB_TECHNICIAN), r.headers["location"].rsplit("/", 1)[1]
            )["iteration"]
            == 2
        )


def test_a_running_design_stops_between_steps_and_records_nothing(clinic: Clinic, study: bytes) -> None:
    lab = clinic.app.state.print_lab
    tech = staff(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id, input_id = _request_with_study(clinic, study)
    design_id = lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
    seen: list[tuple[int, int]] = []
    with pytest.raises(pipeline.Stopped):
        lab.run_design(
            design_id, progress=lambda done, total: seen.append((done, total)), cancelled=lambda: bool(seen)
        )
    assert seen == [(1, 2)]
    design = lab.design(tech, design_id)
    assert design["status"] == "cancelled" and design["device_id"] is None and design["files"] is None
    assert not (lab.root / request_id / design_id).exists()
    found = clinic.records.search(principal=OPERATOR, res_type="Device", params=[])
    assert not found.get("entry")


def test_a_splint_from_an_uploaded_scan(clinic: Clinic, tmp_path: Path) -> None:
    lab = clinic.app.state.print_lab
    tech = staff(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id = lab.create_request(
        principal=staff(clinic, "grey", Role.CLINICIAN), patient_id=clinic.patient_id, kind="splint", note=""
    )
    scan = tmp_path / "arm.stl"
    write_stl(forearm(rotation_deg=(10.0, -20.0, 30.0)).mesh, scan)
    input_id = lab.attach_upload(tech, request_id, filename="arm.stl", data=scan.read_bytes())
    design_id = lab.start_design(
        tech,
        request_id,
        input_id=input_id,
        params={"thickness_mm": 3.0, "clearance_mm": 1.0, "vent_diameter_mm": 8.0},
    )
    result = lab.run_design(design_id)
    assert result["status"] == "ready", result
    design = lab.design(tech, design_id)
    assert design["summary"]["watertight"] is True and design["params"]["vent_diameter_mm"] == 8.0
    device = clinic.records.read(principal=OPERATOR, res_type="Device", res_id=design["device_id"]).body
    assert {"thickness_mm", "clearance_mm", "vent_diameter_mm"} <= {
        p["type"]["text"] for p in device["property"]
    }
    assert lab.file(tech, design_id, "context.stl")[:5] != b""  # the limb under the splint, for the 3D view
    with TestClient(clinic.app, follow_redirects=False) as client:
        sign_in(client, clinic, "lab")
        page = client.get(f"/print/requests/{request_id}")
        assert page.status_code == 200, page.text
        assert re.search(r"<td>\d+ triangles</td>", page.text) and "Iteration 1" in page.text
        design_page = client.get(f"/print/designs/{design_id}")
        assert design_page.status_code == 200 and '"name": "limb"' in design_page.text.replace("&#34;", '"')


def test_erasing_the_patient_shreds_the_lab_files(clinic: Clinic, study: bytes) -> None:
    lab = clinic.app.state.print_lab
    tech = staff(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id, input_id = _request_with_study(clinic, study)
    design_id = lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
    assert lab.run_design(design_id)["status"] == "ready"
    assert lab.file(tech, design_id, "part.stl")
    name = lab.root / request_id / design_id / "part.stl"
    sealed = name.read_bytes()
    clinic.records.erase_patient(principal=OPERATOR, patient_id=clinic.patient_id)
    with pytest.raises(NotFound):  # the request is gone with the patient: the lab sees nothing
        lab.file(tech, design_id, "part.stl")
    with pytest.raises(Gone):  # and the file on disk can no longer be opened by anyone
        clinic.records.open_for_patient(
            patient_id=clinic.patient_id, blob=sealed, aad=f"print/{request_id}/{design_id}/part.stl".encode()
        )


def test_a_job_that_ended_behind_the_designs_back_does_not_hold_the_request(
    clinic: Clinic, study: bytes, queued_jobs: None
) -> None:
    """An admin cancels the queued job from the jobs page (or its worker dies): the design page
    shows it ended, and a new design may start."""
    lab = clinic.app.state.print_lab
    tech = staff(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id, input_id = _request_with_study(clinic, study)
    design_id = lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
    lab.attach_job(design_id, clinic.app.state.jobs.enqueue("print.design", {"design_id": design_id}))
    clinic.app.state.jobs.cancel(lab.design(tech, design_id)["job_id"])
    with TestClient(clinic.app, follow_redirects=False) as client:
        sign_in(client, clinic, "lab")
        html = client.get(f"/print/designs/{design_id}").text
        assert re.search(r'id="design-status">cancelled<', html)
        assert lab.design(tech, design_id)["status"] == "cancelled"
        # A design that never got a job (its enqueue failed) stops blocking after a grace period.
        second = lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
        with pytest.raises(Conflict):
            lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
        with clinic.records.engine.begin() as conn:
            conn.execute(
                update(print_designs)
                .where(print_designs.c.id == second)
                .values(created_at=datetime.now(UTC) - timedelta(hours=1))
            )
        third = lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
        assert lab.design(tech, second)["status"] == "failed"
        assert lab.design(tech, third)["iteration"] == 3


def test_the_lab_closes_with_the_service_request_and_break_glass_cannot_write(
    clinic: Clinic, study: bytes
) -> None:
    lab = clinic.app.state.print_lab
    tech = staff(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id, input_id = _request_with_study(clinic, study)
    # A clinician reading Alice's record by break-glass (read-only) may look, not write.
    glass = Principal(
        kind="user",
        subject="someone",
        scopes=ScopeSet.parse(ROLE_SCOPES[Role.CLINICIAN]),
        role=Role.CLINICIAN,
        break_glass=frozenset({clinic.patient_id}),
    )
    assert lab.request_detail(glass, request_id)["row"].id == request_id
    with pytest.raises(PermissionDenied):
        lab.start_design(glass, request_id, input_id=input_id, params={"preset": "bone"})
    with pytest.raises(PermissionDenied):
        lab.attach_upload(glass, request_id, filename="ct.zip", data=study)
    # The requesting clinician revokes the ServiceRequest through the record: the lab loses it.
    grey = staff(clinic, "grey", Role.CLINICIAN)
    sr = clinic.records.read(principal=grey, res_type="ServiceRequest", res_id=request_id).body
    clinic.records.update(
        principal=grey, res_type="ServiceRequest", res_id=request_id, data={**sr, "status": "revoked"}
    )
    with pytest.raises(NotFound):
        lab.request_detail(tech, request_id)
    assert [r["id"] for r in lab.worklist(tech)] == []
    assert [r["id"] for r in lab.worklist(tech, status="revoked")] == [request_id]


def test_two_decisions_on_one_design_cannot_both_pass(clinic: Clinic, study: bytes) -> None:
    lab = clinic.app.state.print_lab
    tech = staff(clinic, "lab", Role.LAB_TECHNICIAN)
    grey = staff(clinic, "grey", Role.CLINICIAN)
    request_id, input_id = _request_with_study(clinic, study)
    design_id = lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
    assert lab.run_design(design_id)["status"] == "ready"
    lab.decide(grey, design_id, approve=False, reason="margins too thin at the orbit")
    with pytest.raises(Conflict):
        lab.decide(grey, design_id, approve=True, reason="")
    design = lab.design(grey, design_id)
    assert design["status"] == "rejected" and design["decision_reason"] == "margins too thin at the orbit"
    device = clinic.records.read(principal=OPERATOR, res_type="Device", res_id=design["device_id"]).body
    assert device["status"] == "inactive" and [n["text"] for n in device["note"]][-1].startswith("Rejected")
    # The reason and the study's UIDs are sealed in the lab's tables, not stored in clear.
    with clinic.records.engine.connect() as conn:
        reason = conn.execute(
            select(print_designs.c.decision_reason).where(print_designs.c.id == design_id)
        ).scalar()
        summary = conn.execute(select(print_inputs.c.summary).where(print_inputs.c.id == input_id)).scalar()
    assert "orbit" not in reason
    uid = lab.request_detail(tech, request_id)["inputs"][0]["summary"]["study_uid"]
    assert uid and uid not in summary
