"""Print designs as background jobs: a queued design cancelled from its page (a real Redis queue with
no worker yet), a running design stopped between steps (nothing recorded, no files left), a splint
from an uploaded limb scan, and crypto-shredding of the lab's sealed files with the patient."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, csrf_of, enrol, sign_in

from limb_support import forearm, write_stl
from medweave.cli.worker import job_kinds
from medweave.errors import Gone
from medweave.jobs import JobState, open_jobs
from medweave.printing import pipeline
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


def test_erasing_the_patient_shreds_the_lab_files(clinic: Clinic, study: bytes) -> None:
    lab = clinic.app.state.print_lab
    tech = staff(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id, input_id = _request_with_study(clinic, study)
    design_id = lab.start_design(tech, request_id, input_id=input_id, params={"preset": "bone"})
    assert lab.run_design(design_id)["status"] == "ready"
    assert lab.file(tech, design_id, "part.stl")
    clinic.records.erase_patient(principal=OPERATOR, patient_id=clinic.patient_id)
    with pytest.raises(Gone):
        lab.file(tech, design_id, "part.stl")
