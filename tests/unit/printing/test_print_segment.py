"""Segmentation presets, components, seeds, hole filling and anisotropic morphology."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.errors import InvalidInput, Unprocessable
from medweave.printing.segment import mask_stats, segment
from medweave.printing.volume import SourceInfo, Volume
from phantoms import skull_phantom

CT = SourceInfo(modality="CT")


def grid(shape, spacing=(1.0, 1.0, 1.0)):
    """LPS mm coordinates (x, y, z) of voxel centres for data[k, j, i], and the affine."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [
        -(shape[2] - 1) * spacing[0] / 2,
        -(shape[1] - 1) * spacing[1] / 2,
        -(shape[0] - 1) * spacing[2] / 2,
    ]
    k, j, i = np.indices(shape)
    return (
        affine[0, 3] + i * spacing[0],
        affine[1, 3] + j * spacing[1],
        affine[2, 3] + k * spacing[2],
    ), affine


def bone_scene(shape=(48, 48, 48)):
    (x, y, z), affine = grid(shape)
    r = np.sqrt(x**2 + y**2 + z**2)
    shell = (r >= 12) & (r <= 17)
    blob = np.sqrt((x - 19) ** 2 + (y - 19) ** 2 + (z - 19) ** 2) <= 3
    hu = np.where(shell | blob, 1200.0, 40.0).astype(np.float32)
    return Volume(hu, affine, CT), shell, blob


def test_bone_keeps_the_largest_component():
    vol, shell, _ = bone_scene()
    out = segment(vol, "bone", fill_holes=False)
    assert out.data.dtype == np.uint8
    assert np.array_equal(out.affine, vol.affine)
    assert np.array_equal(out.data.astype(bool), shell)


def test_keep_all_and_seeds():
    vol, shell, blob = bone_scene()
    every = segment(vol, "bone", keep="all", fill_holes=False).data.astype(bool)
    assert np.array_equal(every, shell | blob)
    k, j, i = np.argwhere(blob).mean(axis=0).round().astype(int)
    only_blob = segment(vol, "bone", keep=[(i, j, k)], fill_holes=False).data.astype(bool)
    assert np.array_equal(only_blob, blob)
    ks, js, is_ = np.argwhere(shell)[0]
    both = segment(vol, "bone", keep=[(i, j, k), (is_, js, ks)], fill_holes=False).data.astype(bool)
    assert np.array_equal(both, shell | blob)


def test_seed_outside_the_mask_or_the_volume_is_invalid():
    vol, _, _ = bone_scene()
    with pytest.raises(InvalidInput, match="not inside"):
        segment(vol, "bone", keep=[(24, 24, 24)])  # the centre is soft tissue
    with pytest.raises(InvalidInput, match="outside the volume"):
        segment(vol, "bone", keep=[(24, 24, 99)])
    with pytest.raises(InvalidInput):
        segment(vol, "bone", keep="biggest")


def test_hole_filling_fills_an_enclosed_cavity():
    vol, shell, _ = bone_scene()
    filled = segment(vol, "bone").data.astype(bool)
    (x, y, z), _ = grid(vol.shape)
    ball = np.sqrt(x**2 + y**2 + z**2) <= 17
    assert np.array_equal(filled, ball)
    assert mask_stats(segment(vol, "bone", fill_holes=False)).voxels == int(shell.sum())


def test_skin_on_ct_makes_the_head_solid_even_with_an_open_airway():
    shape = (64, 56, 56)
    (x, y, z), affine = grid(shape)
    head = (x / 24) ** 2 + (y / 26) ** 2 + (z / 30) ** 2 <= 1
    sinus = np.sqrt(x**2 + (y + 8) ** 2 + (z - 5) ** 2) <= 6
    airway = (np.sqrt(x**2 + (y + 8) ** 2) <= 3) & (z < 5)  # down to the neck, open at the bottom
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[head] = 40.0
    hu[head & (sinus | airway)] = -1000.0
    hu += np.random.default_rng(1).normal(0, 15, shape).astype(np.float32)
    vol = Volume(hu, affine, CT)
    plain = segment(vol, "custom", lo=-300).data.astype(bool)
    assert (head & ~plain).sum() > 500  # the airway and sinus are holes open to the outside
    skin = segment(vol, "skin").data.astype(bool)
    assert np.count_nonzero(skin ^ head) <= 0.002 * head.sum()


def test_skin_on_mr_uses_otsu():
    shape = (48, 48, 48)
    (x, y, z), affine = grid(shape)
    head = (x / 18) ** 2 + (y / 21) ** 2 + (z / 20) ** 2 <= 1
    rng = np.random.default_rng(2)
    img = np.where(head, 400.0 + 150.0 * np.sin(x / 3.0), 8.0) + rng.normal(0, 6, shape)
    img[head & (np.sqrt(x**2 + y**2 + z**2) <= 6)] = 30.0  # a dark ventricle inside
    vol = Volume(img.astype(np.float32), affine, SourceInfo(modality="MR"))
    skin = segment(vol, "skin").data.astype(bool)
    assert np.count_nonzero(skin ^ head) <= 0.01 * head.sum()
    with pytest.raises(Unprocessable):
        segment(vol, "bone")


def test_custom_window_and_bad_presets():
    vol, shell, blob = bone_scene()
    soft = segment(vol, "custom", lo=0, hi=100, keep="all", fill_holes=False).data.astype(bool)
    assert np.array_equal(soft, ~(shell | blob))
    with pytest.raises(InvalidInput):
        segment(vol, "custom")
    with pytest.raises(InvalidInput):
        segment(vol, "custom", lo=10, hi=5)
    with pytest.raises(InvalidInput):
        segment(vol, "muscle")


def rods(spacing):
    shape = tuple(round(n / s) for n, s in zip((40, 40, 40), spacing[::-1], strict=True))
    (_x, y, z), affine = grid(shape, spacing)
    thin = np.sqrt((y + 8) ** 2 + z**2) <= 1.5  # rods along x, radius in mm
    thick = np.sqrt((y - 8) ** 2 + z**2) <= 4.0
    hu = np.where(thin | thick, 1000.0, 0.0).astype(np.float32)
    return Volume(hu, affine, CT), thin, thick


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 2.0), (0.8, 1.6, 0.8)])
def test_opening_ball_is_in_millimetres(spacing):
    vol, thin, thick = rods(spacing)
    out = segment(vol, "bone", keep="all", fill_holes=False, open_mm=2.5).data.astype(bool)
    assert not (out & thin).any()
    kept = mask_stats(Volume(out.astype(np.uint8), vol.affine)).volume_mm3
    truth = mask_stats(Volume(thick.astype(np.uint8), vol.affine)).volume_mm3
    assert kept == pytest.approx(truth, rel=0.1)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 2.0)])
def test_closing_bridges_a_gap_narrower_than_the_ball(spacing):
    shape = tuple(round(n / s) for n, s in zip((40, 40, 40), spacing[::-1], strict=True))
    (x, y, z), affine = grid(shape, spacing)
    slab = (np.abs(z) <= 8) & (np.abs(y) <= 10) & (np.abs(x) <= 15) & ~(np.abs(x) <= 1.0)  # 2 mm cut
    vol = Volume(np.where(slab, 1000.0, 0.0).astype(np.float32), affine, CT)
    assert segment(vol, "bone", keep="all", fill_holes=False).data[:, :, shape[2] // 2].sum() == 0
    closed = segment(vol, "bone", fill_holes=False, close_mm=2.0).data.astype(bool)
    gap = (np.abs(x) <= 1.0) & (np.abs(z) <= 6) & (np.abs(y) <= 8)
    assert closed[gap].all()
    narrow = segment(vol, "bone", keep="all", fill_holes=False, close_mm=0.6).data.astype(bool)
    assert not narrow[gap].any()


def test_mask_stats_uses_the_voxel_volume():
    vol, shell, _ = bone_scene()
    aff = vol.affine.copy()
    aff[:3, :3] = np.diag([0.5, 0.7, 2.0])
    stats = mask_stats(Volume(shell.astype(np.uint8), aff))
    assert stats.voxels == int(shell.sum())
    assert stats.volume_mm3 == pytest.approx(shell.sum() * 0.7)


def test_bone_on_the_skull_phantom_matches_the_true_skull():
    p = skull_phantom(size=96, defect="left-parietal", tilt_deg=(4, -3, 6))
    bone = segment(p.volume, "bone", fill_holes=False).data.astype(bool)
    truth = p.skull.data.astype(bool)
    assert np.count_nonzero(bone ^ truth) <= 0.001 * truth.sum()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    lo=st.floats(-500, 1500),
    step=st.floats(0, 800),
    open_mm=st.sampled_from([0.0, 1.0, 2.0]),
    close_mm=st.sampled_from([0.0, 1.5]),
)
def test_a_higher_bone_threshold_never_adds_voxels(seed, lo, step, open_mm, close_mm):
    rng = np.random.default_rng(seed)
    data = rng.normal(300, 600, (14, 13, 12)).astype(np.float32)
    aff = np.diag([0.9, 1.0, 1.7, 1.0])
    vol = Volume(data, aff, CT)
    kw = {"keep": "all", "open_mm": open_mm, "close_mm": close_mm}
    low = segment(vol, "bone", lo=lo, **kw).data.astype(bool)
    high = segment(vol, "bone", lo=lo + step, **kw).data.astype(bool)
    assert not (high & ~low).any()
