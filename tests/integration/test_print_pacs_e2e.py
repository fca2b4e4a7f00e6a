"""The print lab against a real PACS, end to end (issue 8): C-STORE a phantom head CT into Orthanc,
pull it back over DICOMweb and over DIMSE through ``medweave print pull``, check the two copies are
bit-identical to each other and to what was stored, build an implant from the pulled copy, and let
the lab service pull the study onto a print request (recorded as an ImagingStudy, sealed at rest).

The phantom is tilted (under 10 degrees), asymmetric, off-centre and has a left-temporal defect, at
1.5 mm voxels. The implant bar is that of test_print_cli.py: Dice >= 0.85 against the bone the
defect removed (the AutoImplant challenge's best published results on real skulls are ~0.94).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from typer.testing import CliRunner

from medweave.cli.main import app
from medweave.errors import NotFound
from medweave.printing import pacs
from medweave.printing.evaluate import dice
from medweave.printing.export import read_stl
from medweave.printing.load import load_volume
from medweave.printing.mesh import signed_volume, topology
from medweave.printing.voxelize import voxelize_on
from medweave.records.service import RecordService
from medweave.security.principal import ROLE_SCOPES, Principal, Role
from medweave.security.scopes import ScopeSet
from orthanc_support import Orthanc, orthanc  # noqa: F401 (the fixture)
from phantoms import Phantom, skull_phantom
from print_support import series_args, write_phantom

# The seeded clinic of the page tests (tests/web/pages_support.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))
from pages_support import Clinic, build_clinic

OPERATOR = Principal.internal("test")
UNKNOWN_STUDY = "1.2.826.0.1.3680043.8.498.99999999999"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@dataclass(frozen=True)
class Stored:
    phantom: Phantom
    folder: Path  # the series as written and sent
    datasets: list[Dataset]
    study_uid: str
    series_uid: str


@dataclass(frozen=True)
class Pulled:
    web: Path
    dimse: Path
    web_summary: dict[str, Any]
    dimse_summary: dict[str, Any]


@pytest.fixture(scope="module")
def stored(orthanc: Orthanc, tmp_path_factory: pytest.TempPathFactory) -> Stored:  # noqa: F811
    """The phantom written as a shuffled series, read back from disk and sent by C-STORE."""
    phantom = skull_phantom(
        size=160, spacing_mm=1.5, tilt_deg=(6.0, -4.0, 8.0), defect="left-temporal", seed=7
    )
    folder = tmp_path_factory.mktemp("sent") / "series"
    paths = write_phantom(phantom, folder)
    datasets = [pydicom.dcmread(p) for p in paths]
    assert pacs.store(orthanc.dimse, datasets) == len(datasets) == phantom.volume.shape[0]
    return Stored(
        phantom,
        folder,
        datasets,
        str(datasets[0].StudyInstanceUID),
        str(datasets[0].SeriesInstanceUID),
    )


@pytest.fixture(scope="module")
def pulled(orthanc: Orthanc, stored: Stored, tmp_path_factory: pytest.TempPathFactory) -> Pulled:  # noqa: F811
    """The study pulled through the CLI contract, once over each protocol."""
    root = tmp_path_factory.mktemp("pulled")
    summaries = {}
    for name, url in (("web", orthanc.dicomweb), ("dimse", orthanc.dimse)):
        code, stdout, stderr = run(
            "print", "pull", "--pacs", url, "--study", stored.study_uid, "--out", str(root / name)
        )
        assert code == 0, stderr
        summaries[name] = json.loads(stdout)
    return Pulled(root / "web", root / "dimse", summaries["web"], summaries["dimse"])


def test_the_stored_series_is_found_over_both_protocols(orthanc: Orthanc, stored: Stored) -> None:  # noqa: F811
    n = len(stored.datasets)
    for url in (orthanc.dicomweb, orthanc.dimse):
        found = pacs.search_series(url, stored.study_uid)
        assert [(s["series_uid"], s["modality"], s["instances"]) for s in found] == [
            (stored.series_uid, "CT", n)
        ]


def test_pull_over_dicomweb_and_dimse_gives_bit_identical_volumes(stored: Stored, pulled: Pulled) -> None:
    n = len(stored.datasets)
    for summary, protocol in ((pulled.web_summary, "dicomweb"), (pulled.dimse_summary, "dimse")):
        assert summary["protocol"] == protocol
        assert summary["study_uid"] == stored.study_uid
        assert summary["instances"] == n
        assert summary["series"] == [{"series_uid": stored.series_uid, "modality": "CT"}]
    names = {f"{ds.SOPInstanceUID}.dcm" for ds in stored.datasets}
    assert {p.name for p in pulled.web.iterdir()} == names
    assert {p.name for p in pulled.dimse.iterdir()} == names

    sent = load_volume(stored.folder)
    web, dimse = load_volume(pulled.web), load_volume(pulled.dimse)
    assert web.data.dtype == dimse.data.dtype == sent.data.dtype
    assert np.array_equal(web.data, dimse.data)
    assert np.array_equal(web.affine, dimse.affine)
    assert np.array_equal(web.data, sent.data)
    assert np.array_equal(web.affine, sent.affine)
    # ... and what was sent is the phantom as written (int16 stored values, dicom_support's default
    # rescale intercept of -1024 HU), where it was.
    hu = np.asarray(stored.phantom.volume.data)
    assert np.array_equal(sent.data, np.rint(hu + 1024.0) - 1024.0)
    np.testing.assert_allclose(sent.affine, stored.phantom.volume.affine, atol=1e-5)
    assert web.source.study_uid == dimse.source.study_uid == stored.study_uid
    assert web.source.series_uid == dimse.source.series_uid == stored.series_uid
    assert sorted(web.source.sop_instance_uids) == sorted(dimse.source.sop_instance_uids)
    assert len(web.source.sop_instance_uids) == n

    # The pixel data of every instance came back byte for byte, over both protocols.
    for ds in stored.datasets:
        for folder in (pulled.web, pulled.dimse):
            back = pydicom.dcmread(folder / f"{ds.SOPInstanceUID}.dcm")
            assert back.PixelData == ds.PixelData
            assert back.ImagePositionPatient == ds.ImagePositionPatient


def test_an_implant_is_built_from_the_pulled_study(stored: Stored, pulled: Pulled, tmp_path: Path) -> None:
    out = tmp_path / "implant.stl"
    code, stdout, stderr = run(
        "print", "implant", "--ct", str(pulled.web), "--out", str(out), "--margin", "0"
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["watertight"] is True and summary["triangles"] > 500 and summary["volume_mm3"] > 0
    mesh = read_stl(out)
    assert topology(mesh).watertight and signed_volume(mesh) > 0
    ct = stored.phantom.volume
    args = series_args(ct)
    k, j, i = ct.shape
    grid = voxelize_on(mesh, origin=args["origin"], spacing=args["spacing"], dims=(i, j, k))
    truth = np.asarray(stored.phantom.missing.data) > 0
    score = dice(np.asarray(grid.data) > 0, truth)
    print(f"implant from the PACS copy vs missing bone: Dice {score:.3f}")
    assert score >= 0.85


# --- the lab service ----------------------------------------------------------------------------


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path, orthanc: Orthanc) -> Iterator[Clinic]:  # noqa: F811
    clinic = build_clinic(records, tmp_path, settings={"pacs_url": orthanc.dicomweb})
    lab = clinic.identity.create_user(
        username="lab", role="lab_technician", password="correct horse battery staple"
    )
    clinic.user_ids["lab"] = lab.id
    yield clinic


def _principal(clinic: Clinic, username: str, role: Role) -> Principal:
    return Principal(
        kind="user",
        subject=clinic.user_ids[username],
        scopes=ScopeSet.parse(ROLE_SCOPES[role]),
        role=role,
        practitioner_id=clinic.practitioner_id if role == Role.CLINICIAN else None,
    )


def _implant_request(clinic: Clinic) -> str:
    lab = clinic.app.state.print_lab
    doctor = _principal(clinic, "grey", Role.CLINICIAN)
    return lab.create_request(
        principal=doctor, patient_id=clinic.patient_id, kind="implant", note="left temporal defect"
    )


def _imaging_studies(clinic: Clinic) -> list[dict[str, Any]]:
    found = clinic.records.search(principal=OPERATOR, res_type="ImagingStudy", params=[])
    return [e["resource"] for e in found.get("entry") or []]


def test_the_lab_attaches_a_study_from_the_pacs(clinic: Clinic, stored: Stored) -> None:
    lab = clinic.app.state.print_lab
    tech = _principal(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id = _implant_request(clinic)
    n = len(stored.datasets)

    input_id = lab.attach_from_pacs(tech, request_id, study_uid=stored.study_uid, series_uid=None)

    studies = _imaging_studies(clinic)
    assert len(studies) == 1
    study = studies[0]
    assert study["subject"] == {"reference": f"Patient/{clinic.patient_id}"}
    assert {"reference": f"ServiceRequest/{request_id}"} in study["basedOn"]
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{stored.study_uid}"} in study["identifier"]
    assert study["numberOfInstances"] == n
    assert [s["uid"] for s in study["series"]] == [stored.series_uid]
    assert study["series"][0]["numberOfInstances"] == n
    assert study["series"][0]["modality"]["code"] == "CT"

    detail = lab.request_detail(tech, request_id)
    [row] = detail["inputs"]
    assert row["id"] == input_id and row["imaging_study_id"] == study["id"]
    assert row["summary"]["study_uid"] == stored.study_uid
    assert row["summary"]["instances"] == n
    assert row["summary"]["modality"] == "CT"
    assert row["summary"]["shape"] == list(stored.phantom.volume.shape)

    # Sealed at rest: neither a zip nor DICOM in clear, and it opens to the study as pulled.
    path = Path(clinic.app.state.settings.data_dir) / "print" / row["name"]
    assert path.is_file()
    blob = path.read_bytes()
    assert blob[:2] != b"PK" and b"DICM" not in blob and not zipfile.is_zipfile(io.BytesIO(blob))
    opened = clinic.records.open_for_patient(
        patient_id=clinic.patient_id, blob=blob, aad=f"print/{row['name']}".encode()
    )
    with zipfile.ZipFile(io.BytesIO(opened)) as zf:
        assert sorted(zf.namelist()) == sorted(f"{ds.SOPInstanceUID}.dcm" for ds in stored.datasets)
        one = stored.datasets[0]
        back = pydicom.dcmread(io.BytesIO(zf.read(f"{one.SOPInstanceUID}.dcm")))
        assert back.PixelData == one.PixelData


def test_an_unknown_study_is_not_found_and_records_nothing(clinic: Clinic, stored: Stored) -> None:
    lab = clinic.app.state.print_lab
    tech = _principal(clinic, "lab", Role.LAB_TECHNICIAN)
    request_id = _implant_request(clinic)
    with pytest.raises(NotFound, match="has no such study"):
        lab.attach_from_pacs(tech, request_id, study_uid=UNKNOWN_STUDY, series_uid=None)
    assert _imaging_studies(clinic) == []
    assert lab.request_detail(tech, request_id)["inputs"] == []
    print_dir = Path(clinic.app.state.settings.data_dir) / "print"
    assert not print_dir.exists() or not [p for p in print_dir.rglob("*") if p.is_file()]
    # The PACS does hold a study: the refusal is about the UID, not an empty or unreachable PACS.
    assert pacs.search_series(clinic.app.state.settings.pacs_url, stored.study_uid)
