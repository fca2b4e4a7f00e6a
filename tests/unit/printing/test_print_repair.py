"""Repair to a valid manifold: weld, clean, orient, fill small holes, or refuse clearly."""

from __future__ import annotations

import numpy as np
import pytest

from medweave.errors import Unprocessable
from medweave.printing.mesh import Mesh, signed_volume, topology
from medweave.printing.repair import is_valid_manifold, merge_vertices, repair, to_manifold
from meshes_support import hollow_sphere, l_bracket, nonmanifold_mesh, open_sphere, sphere, unwelded


def test_valid_mesh_passes_through_with_its_volume() -> None:
    m = l_bracket()
    out = repair(m)
    assert topology(out).ok and is_valid_manifold(out)
    assert signed_volume(out) == pytest.approx(signed_volume(m))


def test_unwelded_triangles_are_welded() -> None:
    soup = unwelded(sphere(10, 2))
    assert not topology(soup).watertight
    assert topology(merge_vertices(soup)).ok
    out = repair(soup)
    assert out.n_triangles == 320 and topology(out).ok


def test_flipped_faces_and_inside_out_are_fixed() -> None:
    s = sphere(10, 3)
    f = s.faces.copy()
    f[::5] = f[::5, ::-1]
    out = repair(Mesh(s.vertices, f))
    assert topology(out).ok and signed_volume(out) == pytest.approx(signed_volume(s))
    out = repair(Mesh(s.vertices, s.faces[:, ::-1].copy()))
    assert signed_volume(out) == pytest.approx(signed_volume(s))


def test_cavity_of_a_shell_keeps_facing_inward() -> None:
    shell = hollow_sphere(15.0, 2.0, 3)
    f = shell.faces.copy()
    f[:100] = f[:100, ::-1]
    out = repair(Mesh(shell.vertices, f))
    assert topology(out).ok
    assert signed_volume(out) == pytest.approx(signed_volume(shell), rel=1e-9)
    assert signed_volume(out) < 4 / 3 * np.pi * 15.0**3 * 0.5


def test_small_holes_are_filled() -> None:
    holed = open_sphere(3)
    assert topology(holed).boundary_edges > 0
    out = repair(holed)
    assert topology(out).ok and is_valid_manifold(out)
    assert signed_volume(out) == pytest.approx(signed_volume(sphere(10, 2)), rel=0.02)


def test_dangling_fin_is_removed() -> None:
    out = repair(nonmanifold_mesh())
    assert topology(out).ok and out.n_triangles == 320


def test_degenerate_and_duplicate_faces_are_dropped() -> None:
    s = sphere(10, 2)
    f = np.concatenate([s.faces, s.faces[:4], [[0, 0, 1]]])
    out = repair(Mesh(s.vertices, f))
    assert topology(out).ok and out.n_triangles == 320


def test_hopeless_input_is_unprocessable() -> None:
    # Two closed tetrahedra glued on one edge: four faces on that edge and no fin to drop.
    v = np.array([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0.5, 1], [0.5, -1, 0], [0.5, -0.5, -1]], float)
    tet = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    other = np.array([[0, 1, 4], [0, 5, 1], [1, 5, 4], [0, 4, 5]])
    with pytest.raises(Unprocessable, match="edges"):
        repair(Mesh(v, np.concatenate([tet, other])))
    s = sphere(10, 2)
    with pytest.raises(Unprocessable):
        repair(Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)))
    with pytest.raises(Unprocessable):
        repair(Mesh(s.vertices * np.nan, s.faces))


def test_manifold3d_accepts_good_and_rejects_open() -> None:
    assert to_manifold(sphere()).status().name == "NoError"
    assert to_manifold(open_sphere(3)).status().name != "NoError"
