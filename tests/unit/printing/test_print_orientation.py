"""Build orientation: less overhang than as given, and no preference for a sphere."""

from __future__ import annotations

import numpy as np
import pytest

from medweave.printing.mesh import Mesh, face_areas, face_normals
from medweave.printing.orientation import overhang_areas, rotation_to_down, suggest_orientation
from meshes_support import box, l_bracket, sphere


def test_bracket_gets_less_overhang_than_worst_and_than_given() -> None:
    mesh = l_bracket()
    o = suggest_orientation(mesh)
    assert o.overhang_before_mm2 == pytest.approx(300.0, rel=1e-6)  # the arm's 30 x 10 underside
    assert o.overhang_after_mm2 < o.overhang_before_mm2
    assert o.overhang_after_mm2 < o.scores.max()
    assert np.allclose(o.rotation @ o.rotation.T, np.eye(3)) and np.linalg.det(o.rotation) == pytest.approx(
        1.0
    )
    turned = o.apply(mesh)
    assert np.ptp(turned.vertices[:, 2]) == pytest.approx(o.height_mm)
    # Recount independently on the turned mesh: downward faces steeper than 45 deg, off the plate.
    n = face_normals(turned)
    low = turned.vertices[:, 2].min()
    on_plate = (n[:, 2] < -0.999) & (turned.triangles()[:, :, 2].max(axis=1) < low + 0.05)
    over = (n[:, 2] < -np.cos(np.radians(45))) & ~on_plate
    assert face_areas(turned)[over].sum() == pytest.approx(o.overhang_after_mm2, abs=1e-6)


def test_sphere_scores_are_all_alike() -> None:
    o = suggest_orientation(sphere(10, 4))
    assert o.scores.std() / o.scores.mean() < 0.05


def test_box_on_its_face_needs_nothing() -> None:
    o = suggest_orientation(box((0, 0, 0), (30, 20, 10)))
    assert o.overhang_before_mm2 == 0.0 and o.overhang_after_mm2 == 0.0
    assert o.height_mm == pytest.approx(10.0)  # ties go to the lowest build


def test_rotation_to_down_and_upside_down_scores() -> None:
    for d in (np.array([0, 0, 1.0]), np.array([0, 0, -1.0]), np.array([1.0, 2.0, -0.5])):
        r = rotation_to_down(d)
        assert np.allclose(r @ (d / np.linalg.norm(d)), [0, 0, -1]) and np.linalg.det(r) == pytest.approx(1.0)
    table = Mesh(box((0, 0, 0), (10, 10, 1)).vertices, box((0, 0, 0), (10, 10, 1)).faces)
    scores, heights = overhang_areas(table, np.array([[0, 0, -1.0], [0, 0, 1.0]]))
    assert scores.tolist() == [0.0, 0.0] and heights.tolist() == [1.0, 1.0]
