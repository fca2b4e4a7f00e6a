"""A real Orthanc PACS: C-STORE a phantom, find it, pull it over DICOMweb and over DIMSE C-GET."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless

from dicom_support import make_datasets, sphere_hu, voxel_points
from medweave.errors import InvalidInput, NotFound
from medweave.printing import pacs
from medweave.printing.load import load_volume
from orthanc_support import free_port, orthanc  # noqa: F401 (the fixture)

SHAPE = (40, 64, 64)
SPACING = (1.0, 1.0, 1.5)


@pytest.fixture(scope="module")
def stored(orthanc):  # noqa: F811
    """A sphere phantom series (JPEG 2000 lossless) sent to Orthanc by C-STORE."""
    hu = np.rint(sphere_hu(voxel_points(SHAPE, SPACING), (-8.0, 2.0, 10.0), 20.0))
    datasets = make_datasets(hu, SPACING, transfer_syntax=JPEG2000Lossless)
    assert pacs.store(orthanc.dimse, datasets) == SHAPE[0]
    return hu, datasets


def test_echo_over_both_protocols(orthanc):  # noqa: F811
    pacs.echo(orthanc.dimse)
    pacs.echo(orthanc.dicomweb)


def test_qido_and_c_find_find_the_stored_series(orthanc, stored):  # noqa: F811
    _, datasets = stored
    study = str(datasets[0].StudyInstanceUID)
    for url in (orthanc.dicomweb, orthanc.dimse):
        found = pacs.search_series(url, study)
        assert found == [
            {
                "series_uid": str(datasets[0].SeriesInstanceUID),
                "modality": "CT",
                "instances": SHAPE[0],
                "description": "phantom",
            }
        ]


def test_pull_over_dicomweb_and_c_get_give_identical_volumes(orthanc, stored, tmp_path):  # noqa: F811
    hu, datasets = stored
    study = str(datasets[0].StudyInstanceUID)
    web = pacs.pull_study(orthanc.dicomweb, study, tmp_path / "web")
    dimse = pacs.pull_study(orthanc.dimse, study, tmp_path / "dimse")
    assert web["protocol"] == "dicomweb" and dimse["protocol"] == "dimse"
    assert web["instances"] == dimse["instances"] == SHAPE[0]
    names = {f"{ds.SOPInstanceUID}.dcm" for ds in datasets}
    assert {p.name for p in (tmp_path / "web").iterdir()} == names
    assert {p.name for p in (tmp_path / "dimse").iterdir()} == names
    a, b = load_volume(tmp_path / "web"), load_volume(tmp_path / "dimse")
    assert np.array_equal(a.data, b.data)
    assert np.array_equal(a.affine, b.affine)
    assert np.array_equal(a.data, hu)
    expected = np.diag([*SPACING, 1.0])
    expected[:3, 3] = (-40.0, -30.0, -20.0)
    np.testing.assert_allclose(a.affine, expected, atol=1e-6)
    assert a.source.study_uid == study
    series = str(datasets[0].SeriesInstanceUID)
    one = pacs.pull_study(orthanc.dimse, study, tmp_path / "one", series_uid=series)
    assert one["series"][0]["series_uid"] == series


def test_unknown_study_is_not_found_and_leaves_nothing(orthanc, tmp_path):  # noqa: F811
    for url in (orthanc.dicomweb, orthanc.dimse):
        with pytest.raises(NotFound, match="has no such study"):
            pacs.pull_study(url, "1.2.3.4.5.6.7", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_pacs_and_bad_addresses(tmp_path):
    port = free_port()  # nothing listens there
    for url in (f"http://127.0.0.1:{port}/dicom-web", f"dicom://ORTHANC@127.0.0.1:{port}"):
        with pytest.raises(InvalidInput, match="cannot be reached"):
            pacs.pull_study(url, "1.2.3", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
    for url, message in [
        ("ftp://x/y", "must start with"),
        ("dicom://127.0.0.1:104", "CALLED_AET@host:port"),
        ("dicom://AN_AE_TITLE_TOO_LONG@h:104", "AE title"),
        ("http://[::1", "not a valid URL"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            pacs.pull_study(url, "1.2.3", tmp_path / "out")
    with pytest.raises(InvalidInput, match="not a valid DICOM UID"):
        pacs.pull_study(f"http://127.0.0.1:{port}/dicom-web", "../../etc", tmp_path / "out")
    # Credentials in the URL never reach a message (they would show on the lab's error page).
    with pytest.raises(InvalidInput, match="cannot be reached") as caught:
        pacs.pull_study(f"http://lab:s3cret-pw@127.0.0.1:{port}/dicom-web", "1.2.3", tmp_path / "out")
    assert "s3cret-pw" not in caught.value.message and "lab:" not in caught.value.message


def test_an_existing_output_folder_is_not_overwritten(orthanc, stored, tmp_path):  # noqa: F811
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="already exists"):
        pacs.pull_study(orthanc.dicomweb, str(stored[1][0].StudyInstanceUID), tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
