"""NIfTI input: the Colin27 head MRI from Debian's mricron-data, and synthetic round trips."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medweave.errors import InvalidInput
from medweave.printing.load import load_volume
from medweave.printing.nifti import ras_to_lps, volume_from_array

CH2 = Path("/usr/share/mricron/templates/ch2.nii.gz")


def test_colin27_loads_with_an_lps_affine():
    img = nib.load(CH2)
    vol = load_volume(CH2)
    assert vol.shape == tuple(reversed(img.shape[:3]))  # [k, j, i]
    assert vol.shape == (181, 217, 181)
    assert vol.spacing == pytest.approx((1.0, 1.0, 1.0))
    ras = img.affine
    np.testing.assert_allclose(vol.affine[:2], -ras[:2])
    np.testing.assert_allclose(vol.affine[2:], ras[2:])
    # A voxel's LPS position is its RAS position with x and y negated.
    ijk = np.array([[10, 20, 30], [90, 108, 90]])
    ras_pts = nib.affines.apply_affine(ras, ijk)
    np.testing.assert_allclose(vol.index_to_lps(ijk), ras_pts * [-1, -1, 1])
    data = np.asanyarray(img.dataobj)
    assert vol.data[30, 20, 10] == data[10, 20, 30]
    # A head: dark air in the corners, bright tissue in the middle.
    assert vol.data[0, 0, 0] < 10 and vol.data[90, 108, 90] > 30
    assert vol.data.dtype == np.float32


def test_synthetic_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.normal(size=(7, 9, 11)).astype(np.float32)
    affine = np.array([[0.0, 0.0, 1.5, -10.0], [-0.8, 0.0, 0.0, 20.0], [0.0, 1.2, 0.0, 5.0], [0, 0, 0, 1]])
    for name in ("x.nii", "x.nii.gz"):
        nib.save(nib.Nifti1Image(data, affine), tmp_path / name)
        vol = load_volume(tmp_path / name)
        np.testing.assert_array_equal(vol.data, np.transpose(data, (2, 1, 0)))
        np.testing.assert_allclose(vol.affine, ras_to_lps(affine))
        back = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine
        np.testing.assert_allclose(back, affine)
    assert vol.spacing == pytest.approx((0.8, 1.2, 1.5))


def test_4d_with_one_volume_is_accepted_and_more_is_refused(tmp_path):
    one = np.zeros((4, 5, 6, 1), np.int16)
    nib.save(nib.Nifti1Image(one, np.eye(4)), tmp_path / "one.nii")
    assert load_volume(tmp_path / "one.nii").shape == (6, 5, 4)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 3), np.int16), np.eye(4)), tmp_path / "four.nii")
    with pytest.raises(InvalidInput, match=r"dimensions \(4, 5, 6, 3\)"):
        load_volume(tmp_path / "four.nii")


def test_non_finite_and_singular_affines_are_refused(tmp_path):
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(InvalidInput, match="not a finite 4x4"):
        volume_from_array(np.zeros((3, 3, 3)), bad)
    flat = np.eye(4)
    flat[2, 2] = 0.0
    with pytest.raises(InvalidInput, match="singular"):
        volume_from_array(np.zeros((3, 3, 3)), flat)


def test_corrupt_nifti_is_refused(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all" * 3))
    with pytest.raises(InvalidInput, match=r"broken\.nii\.gz"):
        load_volume(path)
