"""DICOM input: series assembly, geometry, tilt and spacing, compression, and every refusal."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.uid import JPEG2000Lossless

from dicom_support import (
    j2k_copies,
    make_datasets,
    make_enhanced,
    sphere_hu,
    voxel_points,
    write_datasets,
    write_series,
)
from medweave.errors import InvalidInput, PayloadTooLarge
from medweave.printing import dicom
from medweave.printing.load import load_volume

SHAPE = (24, 32, 40)  # (k, j, i)
SPACING = (0.8, 0.9, 1.5)  # column, row, slice mm
CENTRE = (-24.0, -16.0, 0.0)
RADIUS = 8.0


def phantom(shape=SHAPE, spacing=SPACING, **geometry) -> np.ndarray:
    return np.rint(sphere_hu(voxel_points(shape, spacing, **geometry), CENTRE, RADIUS))


def sphere_fit(vol) -> tuple[np.ndarray, float]:
    """Centre (LPS, from the 0 HU partial-volume-weighted mass) and equivalent radius."""
    frac = np.clip((vol.data + 1000.0) / 2000.0, 0, 1)
    k, j, i = np.nonzero(frac)
    w = frac[k, j, i]
    centre = (vol.index_to_lps(np.stack([i, j, k], axis=1)) * w[:, None]).sum(0) / w.sum()
    volume = w.sum() * abs(np.linalg.det(vol.affine[:3, :3]))
    return centre, float((3 * volume / (4 * np.pi)) ** (1 / 3))


def assert_refused(path: Path, match: str, exc=InvalidInput, **kwargs) -> None:
    before = sorted(p for p in path.parent.rglob("*"))
    with pytest.raises(exc, match=match):
        load_volume(path, **kwargs)
    assert sorted(p for p in path.parent.rglob("*")) == before  # nothing written


# --- Real files from pydicom ---------------------------------------------------------------------


def test_ct_small_single_slice_is_refused_and_its_hu_match_pydicom(tmp_path):
    src = Path(get_testdata_file("CT_small.dcm"))
    with pytest.raises(InvalidInput, match="single slice"):
        load_volume(src)
    ds = pydicom.dcmread(src)
    ours = dicom.slice_values(ds)
    theirs = apply_modality_lut(ds.pixel_array, ds)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs.astype(np.float32))
    assert float(ds.RescaleIntercept) == -1024 and ours.min() < ds.pixel_array.min()


@pytest.mark.parametrize("name", ["J2K_pixelrep_mismatch.dcm", "693_J2KI.dcm"])
def test_jpeg2000_head_ct_slices_decode_to_plausible_hu(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    hu = dicom.slice_values(ds)
    assert hu.shape == (512, 512)
    # A head CT slice: air around the head, soft tissue and some bone inside.
    assert np.percentile(hu, 5) < -900
    assert np.any((hu > 0) & (hu < 80))
    assert hu.max() > 700


def test_a_series_of_compressed_slices_loads_and_stays_compressed(tmp_path):
    src = Path(get_testdata_file("J2K_pixelrep_mismatch.dcm"))
    paths = j2k_copies(src, tmp_path / "j2k", 4, step=2.5)
    assert all(pydicom.dcmread(p).file_meta.TransferSyntaxUID.is_compressed for p in paths)
    vol = load_volume(tmp_path / "j2k")
    assert vol.shape == (4, 512, 512)
    one = dicom.slice_values(pydicom.dcmread(src))
    for k in range(4):
        np.testing.assert_array_equal(vol.data[k], one)
    assert vol.spacing[2] == pytest.approx(2.5, abs=1e-3)
    ds = pydicom.dcmread(src)
    assert vol.spacing[0] == pytest.approx(float(ds.PixelSpacing[1]))
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    np.testing.assert_allclose(vol.affine[:3, 2], 2.5 * np.cross(iop[:3], iop[3:]), atol=1e-3)
    np.testing.assert_allclose(vol.affine[:3, 3], [float(v) for v in ds.ImagePositionPatient], atol=1e-3)


# --- Geometry ------------------------------------------------------------------------------------


def test_affine_matches_a_hand_computed_example():
    # Row cosine (0, 1, 0) (a sagittal-like plane), column cosine (0, 0, -1): normal (-1, 0, 0).
    header = dict(
        modality="CT",
        study_uid="1.2",
        series_uid="1.2.3",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        rows=4,
        columns=5,
        has_pixels=True,
        pixel_spacing=(0.7, 0.4),
        orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    )
    # Positions deliberately out of order: depth along (-1, 0, 0) is -x.
    positions = [(-12.0, 3.0, 8.0), (-10.0, 3.0, 8.0), (-14.0, 3.0, 8.0)]
    headers = [
        dicom.SliceHeader(name=f"f{n}", sop_instance_uid=f"1.2.3.{n}", position=p, **header)
        for n, p in enumerate(positions)
    ]
    geo = dicom.plan_geometry(headers)
    expected = np.array(
        [
            [0.0, 0.0, -2.0, -10.0],  # i: row cosine * column spacing 0.4 -> y; k: 2 mm along -x
            [0.4, 0.0, 0.0, 3.0],
            [0.0, -0.7, 0.0, 8.0],  # j: column cosine * row spacing 0.7 -> -z
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_allclose(geo.affine(), expected, atol=1e-12)
    assert geo.order == (1, 0, 2)
    slices = [np.full((4, 5), float(n), np.float32) for n in range(3)]
    vol = dicom.assemble(headers, geo, slices)
    assert [vol.data[k, 0, 0] for k in range(3)] == [1.0, 0.0, 2.0]
    # Voxel (i=2, j=3, k=1) by hand: P_k + i*0.4*(0,1,0) + j*0.7*(0,0,-1).
    np.testing.assert_allclose(vol.index_to_lps(np.array([[2, 3, 1]])), [[-12.0, 3.8, 5.9]])


def test_written_series_reads_back_exactly_with_its_affine(tmp_path):
    hu = phantom()
    write_series(hu, SPACING, tmp_path / "s")
    vol = load_volume(tmp_path / "s")
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, hu)
    expected = np.diag([*SPACING, 1.0])
    expected[:3, 3] = (-40.0, -30.0, -20.0)
    np.testing.assert_allclose(vol.affine, expected, atol=1e-6)
    centre, radius = sphere_fit(vol)
    np.testing.assert_allclose(centre, CENTRE, atol=0.1)
    assert radius == pytest.approx(RADIUS, abs=0.1)
    src = vol.source
    assert src.modality == "CT" and src.number_of_instances == SHAPE[0] == len(src.sop_instance_uids)
    assert src.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2" and src.body_part == "HEAD"
    assert src.series_number == 2 and src.series_description == "phantom"
    assert not src.notes
    assert "Phantom" not in repr(src)  # no patient name


def test_shuffled_order_and_names_give_the_same_volume(tmp_path):
    hu = phantom()
    datasets = make_datasets(hu, SPACING)
    write_datasets(datasets, tmp_path / "a", shuffle=False, random_names=False)
    write_datasets(datasets, tmp_path / "b", shuffle=True, random_names=True, seed=7)
    a, b = load_volume(tmp_path / "a"), load_volume(tmp_path / "b")
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.affine, b.affine)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(perm=st.permutations(range(6)))
def test_any_slice_order_gives_the_same_volume(perm):
    hu = np.random.default_rng(3).integers(-1000, 1500, size=(6, 5, 7)).astype(float)
    datasets = make_datasets(hu, (1.0, 1.2, 2.0), study_uid="1.2.3", series_uid="1.2.3.4")
    vol = dicom.volume_from_datasets([datasets[p] for p in perm])
    np.testing.assert_array_equal(vol.data, hu)
    np.testing.assert_allclose(vol.affine[:3, 3], (-40.0, -30.0, -20.0), atol=1e-6)


@pytest.mark.parametrize("tilt", [5.0, 10.0])
def test_tilted_series_is_resampled_and_the_sphere_lands_where_it_was(tmp_path, tilt):
    hu = phantom(tilt_deg=tilt)
    write_series(hu, SPACING, tmp_path / "t", tilt_deg=tilt, transfer_syntax=JPEG2000Lossless)
    vol = load_volume(tmp_path / "t")
    assert any("tilt" in n for n in vol.source.notes)
    a = vol.affine[:3, :3]
    np.testing.assert_allclose(a.T @ a, np.diag(np.diag(a.T @ a)), atol=1e-9)  # orthogonal grid
    assert vol.spacing[2] == pytest.approx(SPACING[2] * np.cos(np.radians(tilt)), abs=1e-4)
    centre, radius = sphere_fit(vol)
    voxel = min(vol.spacing)
    assert np.linalg.norm(centre - CENTRE) < voxel
    assert abs(radius - RADIUS) < voxel
    # Without the in-plane correction (stored slices on a naive grid) the centre is over a voxel off.
    raw = dicom.volume_from_datasets(make_datasets(hu, SPACING))  # same pixels, no tilt in the header
    naive = raw.affine.copy()
    naive[:3, 1] = vol.affine[:3, 1]
    naive[:3, 2] = vol.affine[:3, 2]
    naive[:3, 3] = (-40.0, -30.0, -20.0)
    off, _ = sphere_fit(type(vol)(raw.data, naive))
    assert np.linalg.norm(off - CENTRE) > voxel


def test_tilt_over_30_degrees_is_refused(tmp_path):
    write_series(phantom(shape=(6, 8, 8)), SPACING, tmp_path / "t", tilt_deg=35.0)
    assert_refused(tmp_path / "t", "tilted by 35.0 degrees")


def test_non_uniform_spacing_is_resampled_to_uniform(tmp_path):
    z = [0.0, 1.5, 3.0, 4.5, 7.5, 10.5, 12.0, 13.5, 15.0, 18.0, 21.0, 22.5, 24.0, 25.5, 27.0, 30.0]
    shape = (len(z), 32, 40)
    hu = phantom(shape=shape, slice_positions=z)
    write_series(hu, SPACING, tmp_path / "n", slice_positions=z)
    vol = load_volume(tmp_path / "n")
    assert any("non-uniform" in n for n in vol.source.notes)
    assert vol.spacing[2] == pytest.approx(1.5)
    assert vol.shape == (21, 32, 40)
    # Slices at the original positions are unchanged; the others are linear blends.
    for k_src, zk in enumerate(z):
        np.testing.assert_allclose(vol.data[round(zk / 1.5)], hu[k_src], atol=1e-3)
    np.testing.assert_allclose(vol.data[3], (hu[2] + hu[3]) / 2, atol=1e-3)
    centre, _ = sphere_fit(vol)
    assert np.linalg.norm(centre - CENTRE) < 0.5


# --- Input forms ---------------------------------------------------------------------------------


def test_zip_and_nested_folders_with_non_dicom_files(tmp_path):
    hu = phantom()
    src = tmp_path / "study"
    paths = write_series(hu, SPACING, src / "a" / "b")
    for p in paths[::3]:
        (src / "c").mkdir(exist_ok=True)
        p.rename(src / "c" / p.name)
    (src / "README.txt").write_text("not DICOM\n")
    shutil.copy(get_testdata_file("DICOMDIR"), src / "DICOMDIR")  # a media directory: skipped
    nested = load_volume(src)
    np.testing.assert_array_equal(nested.data, hu)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    shutil.rmtree(src)
    zipped = load_volume(archive)
    np.testing.assert_array_equal(zipped.data, hu)
    np.testing.assert_array_equal(zipped.affine, nested.affine)
    assert not any(p != archive for p in tmp_path.iterdir())  # nothing extracted


def test_zip_with_path_tricks_or_too_large_is_refused(tmp_path):
    paths = write_series(phantom(shape=(4, 8, 8)), SPACING, tmp_path / "s")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.write(paths[0], "../evil.dcm")
    assert_refused(bad, "unsafe path")
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 200_000)
        for p in paths:
            zf.write(p, p.name)
    assert_refused(big, "unpacks to", PayloadTooLarge, max_bytes=100_000)
    assert load_volume(big).shape == (4, 8, 8)


# --- Refusals ------------------------------------------------------------------------------------


def test_wrong_modality_and_no_pixel_data_are_refused(tmp_path):
    write_series(phantom(shape=(4, 8, 8)), SPACING, tmp_path / "mr", modality="MR")
    assert_refused(tmp_path / "mr", "modality MR; only CT", modalities=frozenset({"CT"}))
    assert load_volume(tmp_path / "mr").source.modality == "MR"
    sr = tmp_path / "sr" / "report.dcm"
    sr.parent.mkdir()
    pydicom.dcmread(get_testdata_file("rtstruct.dcm"), force=True).save_as(sr, enforce_file_format=True)
    assert_refused(sr.parent, "modality RTSTRUCT")
    assert_refused(sr.parent, "holds no pixel data", modalities=frozenset({"RTSTRUCT"}))


def test_missing_geometry_tags_are_refused(tmp_path):
    for tag, message in [
        ("PixelSpacing", "no valid PixelSpacing"),
        ("ImageOrientationPatient", "no valid ImageOrientationPatient"),
        ("ImagePositionPatient", "no valid ImagePositionPatient"),
    ]:
        datasets = make_datasets(phantom(shape=(4, 8, 8)), SPACING)
        del datasets[2][tag]
        folder = tmp_path / tag
        write_datasets(datasets, folder)
        assert_refused(folder, message)


def test_mixed_series_are_refused_unless_one_is_chosen(tmp_path):
    a = make_datasets(phantom(shape=(4, 8, 8)), SPACING, study_uid="1.2.3", series_uid="1.2.3.1")
    b = make_datasets(phantom(shape=(5, 8, 8)), SPACING, study_uid="1.2.3", series_uid="1.2.3.2")
    write_datasets(a + b, tmp_path / "m")
    assert_refused(tmp_path / "m", r"holds 2 series; .*1\.2\.3\.1, 1\.2\.3\.2")
    assert load_volume(tmp_path / "m", series_uid="1.2.3.2").shape == (5, 8, 8)
    assert_refused(tmp_path / "m", "no series with SeriesInstanceUID 9.9", series_uid="9.9")


def test_different_orientations_or_matrix_sizes_are_refused(tmp_path):
    datasets = make_datasets(phantom(shape=(4, 8, 8)), SPACING)
    datasets[1].ImageOrientationPatient = [1, 0, 0, 0, 0.8, -0.6]
    write_datasets(datasets, tmp_path / "o")
    assert_refused(tmp_path / "o", "different orientations")
    small = make_datasets(phantom(shape=(2, 6, 8)), SPACING, series_uid=datasets[0].SeriesInstanceUID)
    small[0].ImagePositionPatient = [-40, -30, 100]
    small[1].ImagePositionPatient = [-40, -30, 101.5]
    good = make_datasets(phantom(shape=(4, 8, 8)), SPACING, series_uid=datasets[0].SeriesInstanceUID)
    write_datasets(good + small, tmp_path / "s")
    assert_refused(tmp_path / "s", r"different matrix sizes \(8x8 and 6x8\)")


def test_duplicate_positions_and_missing_slices_are_refused(tmp_path):
    hu = phantom(shape=(5, 8, 8))
    write_series(hu, SPACING, tmp_path / "d", slice_positions=[0, 1.5, 3, 3, 4.5])
    assert_refused(tmp_path / "d", "duplicate slices")
    write_series(hu, SPACING, tmp_path / "g", slice_positions=[0, 1.5, 3, 9, 10.5])
    assert_refused(tmp_path / "g", "gap of 6.00 mm .* slices are missing")


def test_corrupt_files_are_named_by_relative_path(tmp_path):
    paths = write_series(phantom(shape=(4, 8, 8)), SPACING, tmp_path / "c" / "sub")
    raw = paths[1].read_bytes()
    paths[1].write_bytes(raw[:200])  # preamble and a broken header
    assert_refused(tmp_path / "c", f"file sub/{paths[1].name} is corrupt")
    paths[1].write_bytes(raw[:-50])  # header fine, pixel data cut short
    assert_refused(tmp_path / "c", f"pixel data of the file sub/{paths[1].name}")


def test_volume_over_the_limit_is_refused_before_decoding(tmp_path):
    hu = phantom(shape=(4, 8, 8))
    paths = write_series(hu, SPACING, tmp_path / "v")
    # Pixel data that cannot be decoded: the size check must come first and say so.
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.PixelData = b"\0" * 10
        ds.save_as(p)
    assert_refused(tmp_path / "v", "over the limit", PayloadTooLarge, max_bytes=4 * 8 * 8 * 4 - 1)
    assert_refused(tmp_path / "v", "pixel data of the file", max_bytes=4 * 8 * 8 * 4)


def test_empty_and_missing_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    assert_refused(tmp_path / "empty", "No DICOM image files")
    with pytest.raises(InvalidInput, match="does not exist"):
        load_volume(tmp_path / "nope")


# --- Enhanced (multi-frame) CT and MR ------------------------------------------------------------


def save(ds: pydicom.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("tilt", [0.0, 8.0])
def test_an_enhanced_ct_reads_as_the_same_series_in_single_frames(tmp_path, tilt):
    hu = phantom(tilt_deg=tilt)
    order = [int(n) for n in np.random.default_rng(5).permutation(SHAPE[0])]  # frames out of order
    enhanced = load_volume(
        save(make_enhanced(hu, SPACING, tilt_deg=tilt, frame_order=order), tmp_path / "e.dcm")
    )
    write_series(hu, SPACING, tmp_path / "classic", tilt_deg=tilt)
    classic = load_volume(tmp_path / "classic")
    np.testing.assert_array_equal(enhanced.data, classic.data)
    np.testing.assert_allclose(enhanced.affine, classic.affine, atol=1e-9)
    assert enhanced.source.notes == classic.source.notes
    src = enhanced.source
    assert src.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2.1"
    assert src.number_of_instances == 1 == len(src.sop_instance_uids)  # one file, many frames


def test_a_series_of_one_frame_enhanced_images(tmp_path):
    """Some scanners write an Enhanced CT as one single-frame file per slice."""
    hu = phantom()
    for s in range(SHAPE[0]):
        one = make_enhanced(hu[s : s + 1], SPACING, origin=(-40.0, -30.0, -20.0 + s * SPACING[2]))
        one.StudyInstanceUID, one.SeriesInstanceUID = "1.2.3", "1.2.3.4"
        save(one, tmp_path / "series" / f"IM{(s * 7) % SHAPE[0]:03d}")
    vol = load_volume(tmp_path / "series")
    np.testing.assert_array_equal(vol.data, hu)
    assert vol.source.number_of_instances == SHAPE[0]


def test_per_frame_rescale_applies_to_its_own_frame():
    hu = phantom()
    vol = dicom.volume_from_datasets([make_enhanced(hu, SPACING, per_frame_rescale=True)])
    np.testing.assert_array_equal(vol.data, hu)


def test_an_enhanced_mr_without_rescale_keeps_its_stored_values(tmp_path):
    values = np.random.default_rng(2).integers(0, 3000, size=(6, 5, 7)).astype(float)
    vol = load_volume(save(make_enhanced(values, (1.0, 1.0, 2.0), modality="MR"), tmp_path / "mr.dcm"))
    np.testing.assert_array_equal(vol.data, values)
    assert vol.source.modality == "MR"


def test_enhanced_frames_in_a_zip_with_other_files(tmp_path):
    hu = phantom()
    save(make_enhanced(hu, SPACING), tmp_path / "src" / "DICOM" / "IMG0001")
    (tmp_path / "src" / "README.txt").write_text("not dicom")
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in (tmp_path / "src").rglob("*"):
            if f.is_file():
                z.write(f, f.relative_to(tmp_path / "src"))
    np.testing.assert_array_equal(load_volume(archive).data, hu)


def test_multi_frame_images_that_cannot_be_placed_are_refused(tmp_path):
    hu = phantom(shape=(4, 6, 8))
    plain = make_enhanced(hu, SPACING)
    del plain.PerFrameFunctionalGroupsSequence  # frames, but no per-frame positions
    assert_refused(save(plain, tmp_path / "a" / "f.dcm"), "without per-frame positions")
    short = make_enhanced(hu, SPACING)
    short.PerFrameFunctionalGroupsSequence = short.PerFrameFunctionalGroupsSequence[:3]
    assert_refused(save(short, tmp_path / "b" / "f.dcm"), "4 frames but 3 per-frame")
    lost = make_enhanced(hu, SPACING)
    del lost.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    assert_refused(
        save(lost, tmp_path / "c" / "f.dcm"), r"f.dcm \(frame 3\) has no valid ImagePositionPatient"
    )
    twice = make_enhanced(hu, SPACING, frame_order=[0, 1, 1, 2])
    assert_refused(save(twice, tmp_path / "d" / "f.dcm"), "share one position")
