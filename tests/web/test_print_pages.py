"""The print lab through its pages: a clinician requests a part, a lab technician uploads the
study and runs the design as a real background job, the design page shows the check report and
the files, the files match the SHA-256 recorded on the patient's Device and DocumentReferences,
and the clinician approves. Plus who may not, and bad uploads."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, csrf_of, enrol, sign_in
from PIL import Image
from sqlalchemy import select

from medweave.audit.tables import audit_log
from medweave.cli.worker import job_client
from medweave.jobs import JobState
from medweave.printing.export import read_3mf
from medweave.records.service import RecordService
from medweave.security.principal import ROLE_SCOPES, Principal, Role
from medweave.security.scopes import ScopeSet
from print_support import small_skull, write_phantom, zipped

OPERATOR = Principal.internal("test")


def zipped_empty() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README.txt", "no images here")
    return buf.getvalue()


@pytest.fixture(scope="module")
def study_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("skull")
    write_phantom(small_skull(size=160, spacing_mm=2.0, tilt_deg=(4.0, -3.0, 2.0)), folder)
    return zipped(folder)


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Iterator[Clinic]:
    clinic = build_clinic(records, tmp_path)
    lab = clinic.identity.create_user(
        username="lab", role="lab_technician", password="correct horse battery staple"
    )
    clinic.user_ids["lab"] = lab.id
    clinic.secrets["lab"] = enrol(clinic.identity, lab.id)
    jobs = job_client(records, clinic.app.state.settings)
    clinic.app.state.jobs = jobs
    yield clinic
    jobs.close()


def _client(clinic: Clinic) -> TestClient:
    return TestClient(clinic.app, follow_redirects=False)


def _request(client: TestClient, clinic: Clinic, kind: str = "model") -> str:
    token = sign_in(client, clinic, "grey")
    chart = client.get(f"/patients/{clinic.patient_id}")
    assert 'action="/patients/' in chart.text and "Request the part" in chart.text
    r = client.post(
        f"/patients/{clinic.patient_id}/print-requests",
        data={"csrf_token": token, "kind": kind, "note": "left parietal defect"},
    )
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1]


def _upload(client: TestClient, request_id: str, name: str, data: bytes, token: str) -> Any:
    return client.post(
        f"/print/requests/{request_id}/upload",
        data={"csrf_token": token},
        files={"file": (name, data, "application/octet-stream")},
    )


def _lab_principal(clinic: Clinic) -> Principal:
    return Principal(
        kind="user",
        subject=clinic.user_ids["lab"],
        scopes=ScopeSet.parse(ROLE_SCOPES[Role.LAB_TECHNICIAN]),
        role=Role.LAB_TECHNICIAN,
    )


def _wait_design(clinic: Clinic, design_id: str) -> dict[str, Any]:
    lab = clinic.app.state.print_lab
    design = lab.design(_lab_principal(clinic), design_id)
    info = clinic.app.state.jobs.wait(design["job_id"], timeout=240)
    assert info.state in (JobState.DONE, JobState.CANCELLED, JobState.FAILED), info.state
    return lab.design(_lab_principal(clinic), design_id)


def test_a_model_is_requested_designed_checked_recorded_and_approved(
    clinic: Clinic, study_zip: bytes
) -> None:
    with _client(clinic) as doctor, _client(clinic) as tech:
        request_id = _request(doctor, clinic, "model")

        token = sign_in(tech, clinic, "lab")
        worklist = tech.get("/print")
        assert request_id[:8] in worklist.text
        page = tech.get(f"/print/requests/{request_id}")
        assert page.status_code == 200 and "Alice" in page.text and "left parietal defect" in page.text

        r = _upload(tech, request_id, "skull.zip", study_zip, token)
        assert r.status_code == 303, r.text
        page = tech.get(f"/print/requests/{request_id}").text
        assert "CT" in page and "instances" in page
        input_id = re.search(r'<option value="(in_[0-9a-f]{16})"', page).group(1)

        r = tech.post(
            f"/print/requests/{request_id}/designs",
            data={"csrf_token": csrf_of(page), "input": input_id, "preset": "custom", "iso": "300", "hi": ""},
        )
        assert r.status_code == 303, r.text
        design_id = r.headers["location"].rsplit("/", 1)[1]
        design = _wait_design(clinic, design_id)
        assert design["status"] == "ready", design.get("error")
        assert design["params"]["preset"] == "custom" and design["params"]["iso"] == 300.0
        assert design["params"]["hi"] is None

        html = tech.get(f"/print/designs/{design_id}").text
        assert (
            'id="check-report"' in html and 'class="mesh-viewer"' in html and 'class="slice-viewer"' in html
        )
        for check in design["report"]["checks"]:
            assert check["name"].replace("_", " ") in html

        # The files are what the record says they are.
        records = clinic.records
        device = records.read(principal=OPERATOR, res_type="Device", res_id=design["device_id"]).body
        assert device["patient"]["reference"] == f"Patient/{clinic.patient_id}"
        props = {p["type"]["text"] for p in device["property"]}
        assert {"preset", "iso", "triangles", "smooth"} <= props
        for f in design["files"]:
            data = tech.get(f"/print/designs/{design_id}/files/{f['name']}")
            assert data.status_code == 200
            assert hashlib.sha256(data.content).hexdigest() == f["sha256"]
            doc = records.read(principal=OPERATOR, res_type="DocumentReference", res_id=f["document"]).body
            assert doc["identifier"][0]["value"] == f["sha256"]
            assert {"reference": f"Device/{design['device_id']}"} in doc["context"]["related"]
        threemf = tech.get(f"/print/designs/{design_id}/files/part.3mf").content
        path = Path(clinic.app.state.settings.data_dir) / "check.3mf"
        path.write_bytes(threemf)
        _mesh, meta = read_3mf(path)
        assert any(device["identifier"][0]["value"] in str(v) for v in meta.values())

        # Slices with the mask: real PNGs of the preview's size.
        img = tech.get(f"/print/designs/{design_id}/slices/40.png?layer=image")
        mask = tech.get(f"/print/designs/{design_id}/slices/40.png?layer=mask")
        assert img.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(img.content)).size == Image.open(io.BytesIO(mask.content)).size
        assert tech.get(f"/print/designs/{design_id}/slices/9999.png").status_code == 404

        # The files on disk are sealed: no STL header or DICOM preamble in clear.
        for f in (Path(clinic.app.state.settings.data_dir) / "print").rglob("*"):
            if f.is_file():
                head = f.read_bytes()[:200]
                assert b"DICM" not in head and b"solid" not in head and head[:2] != b"PK"

        # Audited under the technician's name.
        with records.engine.connect() as conn:
            agents = {row.user_ref for row in conn.execute(select(audit_log.c.user_ref))}
        assert f"internal:print-lab/{clinic.user_ids['lab']}" in agents

        # The lab cannot approve; the clinician can.
        assert "Approve for printing" not in html
        r = tech.post(
            f"/print/designs/{design_id}/decision", data={"csrf_token": token, "decision": "approve"}
        )
        assert r.status_code == 404
        doctor_page = doctor.get(f"/print/designs/{design_id}").text
        assert "Approve for printing" in doctor_page
        r = doctor.post(
            f"/print/designs/{design_id}/decision",
            data={"csrf_token": csrf_of(doctor_page), "decision": "approve", "reason": "fits"},
        )
        assert r.status_code == 303, r.text
        assert (
            records.read(principal=OPERATOR, res_type="Device", res_id=design["device_id"]).body["status"]
            == "active"
        )
        sr = records.read(principal=OPERATOR, res_type="ServiceRequest", res_id=request_id).body
        assert sr["status"] == "completed"
        # A completed request leaves the lab's open worklist and its pages.
        assert request_id[:8] not in tech.get("/print").text
        assert tech.get(f"/print/requests/{request_id}").status_code == 404


def test_who_may_not(clinic: Clinic) -> None:
    with _client(clinic) as doctor, _client(clinic) as patient, _client(clinic) as admin:
        request_id = _request(doctor, clinic, "implant")
        token = csrf_of(doctor.get(f"/patients/{clinic.patient_id}").text)
        # Bob is in nobody's care: the record store refuses the write, and the lab sees nothing.
        r = doctor.post(
            f"/patients/{clinic.other_id}/print-requests", data={"csrf_token": token, "kind": "model"}
        )
        assert r.status_code == 403
        lab = clinic.app.state.print_lab
        assert [row["patient_id"] for row in lab.worklist(_lab_principal(clinic))] == [clinic.patient_id]
        sign_in(patient, clinic, "alice")
        assert patient.get("/print").status_code == 404
        assert patient.get(f"/print/requests/{request_id}").status_code == 404
        sign_in(admin, clinic, "ada")
        assert admin.get("/print").status_code == 404
        # No CSRF token, no upload.
        r = doctor.post(
            f"/print/requests/{request_id}/upload", files={"file": ("a.zip", b"PK", "application/zip")}
        )
        assert r.status_code == 403
        # An unknown kind is refused.
        r = doctor.post(
            f"/patients/{clinic.patient_id}/print-requests", data={"csrf_token": token, "kind": "toy"}
        )
        assert r.status_code == 400


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.dcm", b"\x00" * 128 + b"DICM" + b"\x01\x02" * 20, "read"),
        ("notes.txt", b"hello", "upload a"),
        ("empty.zip", zipped_empty(), "no DICOM"),
    ],
)
def test_a_bad_upload_is_refused_and_leaves_nothing(
    clinic: Clinic, name: str, data: bytes, message: str
) -> None:
    with _client(clinic) as doctor, _client(clinic) as tech:
        request_id = _request(doctor, clinic, "model")
        token = sign_in(tech, clinic, "lab")
        r = _upload(tech, request_id, name, data, token)
        assert r.status_code == 400
        assert message.lower() in r.text.lower()
        detail = clinic.app.state.print_lab.request_detail(_lab_principal(clinic), request_id)
        assert detail["inputs"] == []
        found = clinic.records.search(principal=OPERATOR, res_type="ImagingStudy", params=[])
        assert not found.get("entry")
        assert not list((Path(clinic.app.state.settings.data_dir) / "print").rglob("*.zip"))


def test_a_folder_upload_and_click_to_keep(clinic: Clinic, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    write_phantom(small_skull(size=160, spacing_mm=2.0, defect=None), folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    with _client(clinic) as doctor, _client(clinic) as tech:
        request_id = _request(doctor, clinic, "model")
        token = sign_in(tech, clinic, "lab")
        r = tech.post(
            f"/print/requests/{request_id}/upload",
            data={"csrf_token": token},
            files=[("folder", (f"series/{p.name}", p.read_bytes(), "application/dicom")) for p in files],
        )
        assert r.status_code == 303, r.text
        detail = clinic.app.state.print_lab.request_detail(_lab_principal(clinic), request_id)
        assert detail["inputs"][0]["summary"]["instances"] == len(files)
        page = tech.get(f"/print/requests/{request_id}").text
        input_id = re.search(r'<option value="(in_[0-9a-f]{16})"', page).group(1)
        r = tech.post(
            f"/print/requests/{request_id}/designs",
            data={"csrf_token": csrf_of(page), "input": input_id, "preset": "bone"},
        )
        first = _wait_design(clinic, r.headers["location"].rsplit("/", 1)[1])
        assert first["status"] == "ready", first.get("error")
        html = tech.get(f"/print/designs/{first['id']}").text
        assert 'data-pick-form="keep-form"' in html
        k = first["summary"]["preview_focus"]
        mask = np.asarray(
            Image.open(
                io.BytesIO(tech.get(f"/print/designs/{first['id']}/slices/{k}.png?layer=mask").content)
            )
        )
        j, i = (int(v) for v in np.argwhere(mask > 0)[0])
        # A click on the bone keeps its component: a new iteration with the seed in full-resolution voxels.
        r = tech.post(
            f"/print/designs/{first['id']}/keep", data={"csrf_token": csrf_of(html), "i": i, "j": j, "k": k}
        )
        assert r.status_code == 303, r.text
        second = _wait_design(clinic, r.headers["location"].rsplit("/", 1)[1])
        step = first["summary"]["preview_step"]
        assert second["status"] == "ready" and second["iteration"] == 2
        assert second["params"]["seeds"] == [[i * step, j * step, k]]
        assert (
            abs(second["summary"]["volume_mm3"] - first["summary"]["volume_mm3"])
            < 0.02 * first["summary"]["volume_mm3"]
        )
        # A click on air keeps nothing: the iteration fails with the reason.
        html = tech.get(f"/print/designs/{second['id']}").text
        r = tech.post(
            f"/print/designs/{second['id']}/keep", data={"csrf_token": csrf_of(html), "i": 0, "j": 0, "k": k}
        )
        third = _wait_design(clinic, r.headers["location"].rsplit("/", 1)[1])
        assert third["status"] == "failed" and "not inside the segmented mask" in third["error"], third[
            "params"
        ]
        assert third["device_id"] is None


def test_an_open_limb_scan_is_refused_on_upload(clinic: Clinic) -> None:
    import trimesh

    box = trimesh.creation.box(extents=(60.0, 50.0, 250.0))
    box.faces = box.faces[:-2]  # two triangles missing: open
    data = box.export(file_type="stl")
    with _client(clinic) as doctor, _client(clinic) as tech:
        request_id = _request(doctor, clinic, "splint")
        token = sign_in(tech, clinic, "lab")
        r = _upload(tech, request_id, "arm.stl", data, token)
        assert r.status_code == 422
        assert "open edges" in r.text
        assert clinic.app.state.print_lab.request_detail(_lab_principal(clinic), request_id)["inputs"] == []
