"""The mid-sagittal plane by symmetry registration, on tilted asymmetric skulls with a defect."""

from __future__ import annotations

import numpy as np
import pytest

from medweave.errors import InvalidInput
from medweave.printing.design.symmetry import SymmetryPlane, angle_between_deg, fit_symmetry_plane
from medweave.printing.segment import segment
from medweave.printing.volume import Volume
from phantoms import skull_phantom

CASES = [
    ((0.0, 0.0, 0.0), "left-parietal", 1.0),
    ((8.0, -6.0, 10.0), "right-frontal", 1.0),
    ((-5.0, 10.0, -7.0), "left-temporal", 1.0),
    ((10.0, 10.0, 10.0), "right-occipital", 1.0),
    ((0.0, -10.0, 6.0), "left-parietal", (0.9, 0.9, 1.5)),
]


def errors(plane: SymmetryPlane, phantom) -> tuple[float, float]:
    angle = angle_between_deg(plane.normal, phantom.plane_normal)
    offset = abs(float(plane.signed_distance(phantom.centre[None, :])[0]))
    return angle, offset


@pytest.mark.parametrize(("tilt", "defect", "spacing"), CASES)
def test_plane_of_a_tilted_skull_with_a_defect(tilt, defect, spacing):
    p = skull_phantom(size=128, tilt_deg=tilt, defect=defect, spacing_mm=spacing, asymmetry=True)
    bone = segment(p.volume, "bone", fill_holes=False)
    plane = fit_symmetry_plane(bone)
    angle, offset = errors(plane, p)
    print(
        f"tilt {tilt} {defect} spacing {spacing}: {angle:.2f} deg, {offset:.2f} mm, "
        f"residual {plane.residual_mm:.2f} mm"
    )
    assert angle <= 2.0
    assert offset <= 1.5
    assert plane.normal[0] > 0  # points to the patient's left
    assert np.linalg.norm(plane.normal) == pytest.approx(1.0)
    assert plane.inlier_fraction > 0.8


def test_plane_from_the_head_surface():
    p = skull_phantom(size=128, tilt_deg=(-8.0, 6.0, -9.0), defect="right-frontal")
    head = segment(p.volume, "skin")
    angle, offset = errors(fit_symmetry_plane(head), p)
    assert angle <= 2.0
    assert offset <= 1.5


def test_reflection_is_an_involution_fixing_the_plane():
    n = np.array([0.9, 0.3, -0.2])
    n /= np.linalg.norm(n)
    plane = SymmetryPlane(n, 4.0, 0.0, 1.0)
    m = plane.reflection()
    assert np.allclose(m @ m, np.eye(4))
    on_plane = np.array([*(4.0 * n + np.cross(n, [0, 0, 1.0])), 1.0])
    assert np.allclose(m @ on_plane, on_plane)
    off = np.array([*(7.0 * n), 1.0])
    assert np.allclose((m @ off)[:3], 1.0 * n)


def test_too_small_a_mask_has_no_plane():
    data = np.zeros((32, 32, 32), dtype=np.uint8)
    data[10:13, 10:12, 5:9] = 1
    with pytest.raises(InvalidInput):
        fit_symmetry_plane(Volume(data, np.eye(4)))
