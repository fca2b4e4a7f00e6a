"""Wall thickness map against shells of known wall."""

from __future__ import annotations

import numpy as np
import pytest

from medweave.errors import Unprocessable
from medweave.printing.thickness import choose_pitch, wall_thickness
from meshes_support import box, hollow_sphere, open_sphere, sphere


@pytest.mark.parametrize("wall", [2.0, 5.0])
def test_shell_median_is_the_wall(wall: float) -> None:
    tm = wall_thickness(hollow_sphere(15.0, wall, 4), resolve_mm=1.0)
    assert tm.median == pytest.approx(wall, abs=0.5)
    assert np.nanmedian(tm.per_vertex) == pytest.approx(wall, abs=0.5)
    assert tm.minimum <= tm.p1 <= tm.p5 <= tm.median
    assert np.isfinite(tm.per_vertex).mean() > 0.99


def test_thin_side_is_found_where_it_is() -> None:
    # Inner sphere moved up 2.5 mm in a 4 mm shell: 1.5 mm at the top, 6.5 mm at the bottom.
    mesh = hollow_sphere(15.0, 4.0, 4, inner_offset=(0.0, 0.0, 2.5))
    tm = wall_thickness(mesh, resolve_mm=1.0)
    assert tm.p1 < 2.0
    outer = np.linalg.norm(mesh.vertices, axis=1) > 14.9
    top = outer & (mesh.vertices[:, 2] > 14.0)
    bottom = outer & (mesh.vertices[:, 2] < -14.0)
    assert np.nanmedian(tm.per_vertex[top]) == pytest.approx(1.5, abs=0.5)
    assert np.nanmedian(tm.per_vertex[bottom]) == pytest.approx(6.5, abs=0.7)


def test_plate_and_solid() -> None:
    plate = wall_thickness(box((0, 0, 0), (40, 20, 3)), resolve_mm=1.0)
    assert plate.median == pytest.approx(3.0, abs=0.5)
    ball = wall_thickness(sphere(10, 3), resolve_mm=2.0)
    assert ball.median == pytest.approx(20.0, abs=2.0)


def test_pitch_respects_the_voxel_budget() -> None:
    big = box((0, 0, 0), (200, 200, 200))
    pitch = choose_pitch(big, resolve_mm=0.4, max_voxels=1_000_000)
    assert (204 / pitch) ** 3 <= 1_100_000
    assert choose_pitch(sphere(5), resolve_mm=0.4) == pytest.approx(0.1)


def test_open_mesh_is_refused() -> None:
    with pytest.raises(Unprocessable):
        wall_thickness(open_sphere())
