"""Reading uploaded meshes: every format, bad files refused, open meshes read but not closed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from medweave.errors import InvalidInput, PayloadTooLarge, Unprocessable
from medweave.printing.export import write_3mf
from medweave.printing.mesh import signed_volume, topology
from medweave.printing.meshio import read_mesh, require_closed
from meshes_support import l_bracket, open_sphere, sphere, trimesh_of


@pytest.mark.parametrize("kind", ["stl", "ply", "obj"])
def test_formats_read_welded_and_closed(kind: str) -> None:
    mesh = sphere(10, 2)
    data = trimesh_of(mesh).export(file_type=kind)
    raw = data.encode() if isinstance(data, str) else data
    got = read_mesh(raw, kind)
    assert got.n_triangles == mesh.n_triangles and len(got.vertices) == len(mesh.vertices)
    assert topology(got).ok
    assert signed_volume(got) == pytest.approx(signed_volume(mesh), rel=1e-5)


def test_ascii_stl_and_path_and_3mf(tmp_path: Path) -> None:
    mesh = l_bracket()
    ascii_stl = trimesh.exchange.stl.export_stl_ascii(trimesh_of(mesh))
    path = tmp_path / "part.STL"
    path.write_text(ascii_stl)
    assert read_mesh(path).n_triangles == mesh.n_triangles
    write_3mf(mesh, tmp_path / "part.3mf", title="part")
    got = read_mesh(tmp_path / "part.3mf")
    assert np.allclose(np.sort(got.vertices, axis=0), np.sort(mesh.vertices, axis=0), atol=1e-6)


@pytest.mark.parametrize(
    ("raw", "suffix"),
    [
        (b"", "stl"),
        (b"solid x\nendsolid x\n", "stl"),
        (b"definitely not a mesh", "ply"),
        (b"v 0 0 0\nv 1 0 0\n", "obj"),
        (b"PK\x03\x04junk", "3mf"),
        (b"solid", "step"),
        (b"solid", None),
    ],
)
def test_bad_uploads_are_invalid(raw: bytes, suffix: str | None) -> None:
    with pytest.raises(InvalidInput):
        read_mesh(raw, suffix)


def test_too_large_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        read_mesh(b"x" * 2000, "stl", max_bytes=1000)


def test_open_mesh_is_read_but_not_closed() -> None:
    mesh = open_sphere(3)
    got = read_mesh(trimesh_of(mesh).export(file_type="ply"), "ply")
    assert topology(got).boundary_edges == 9
    with pytest.raises(Unprocessable, match="the mesh has 9 open edges"):
        require_closed(got)
    require_closed(sphere())
