"""Uploaded meshes: STL (ASCII and binary), PLY, OBJ and 3MF to a :class:`Mesh` (bytes in, no paths out).

STL, PLY and OBJ are read by trimesh with ``process=False`` (so nothing is silently repaired),
then identical vertices are welded; 3MF goes through :func:`medweave.printing.export.read_3mf`.
Unreadable, empty or unknown files are :class:`~medweave.errors.InvalidInput`; an oversized one
is :class:`~medweave.errors.PayloadTooLarge`. Open or non-manifold meshes are *read*: the print
checks report them. Design inputs that must be solids go through :func:`require_closed`.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from medweave.errors import InvalidInput, PayloadTooLarge, Unprocessable
from medweave.printing.export import read_3mf
from medweave.printing.mesh import Mesh, topology
from medweave.printing.repair import merge_vertices

FORMATS = ("stl", "ply", "obj", "3mf")
MAX_BYTES = 512 * 1024 * 1024


def _suffix(suffix: str | None, path: Path | None) -> str:
    s = (suffix or (path.suffix if path is not None else "")).lower().lstrip(".")
    if s not in FORMATS:
        raise InvalidInput(f"unknown mesh format {s or '(none)'!r}; use one of: {', '.join(FORMATS)}.")
    return s


def read_mesh(source: Path | str | bytes, suffix: str | None = None, *, max_bytes: int = MAX_BYTES) -> Mesh:
    """A mesh from a file or its bytes; ``suffix`` ('stl', '.obj'...) is needed for bytes."""
    path = None if isinstance(source, bytes) else Path(source)
    kind = _suffix(suffix, path)
    if path is not None:
        try:
            if path.stat().st_size > max_bytes:
                raise PayloadTooLarge("the mesh file is too large.")
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidInput("the mesh file cannot be read.") from exc
    else:
        assert isinstance(source, bytes)
        raw = source
    if len(raw) > max_bytes:
        raise PayloadTooLarge("the mesh file is too large.")
    if not raw.strip():
        raise InvalidInput("the mesh file is empty.")
    if kind == "3mf":
        mesh, _ = read_3mf(raw)
    else:
        mesh = _read_trimesh(raw, kind)
    if mesh.n_triangles == 0:
        raise InvalidInput("the mesh file holds no triangles.")
    if not np.all(np.isfinite(mesh.vertices)):
        raise InvalidInput("the mesh has vertices that are not numbers.")
    if mesh.faces.min() < 0 or mesh.faces.max() >= mesh.vertices.shape[0]:
        raise InvalidInput("the mesh has faces that refer to missing vertices.")
    return merge_vertices(mesh)


def _read_trimesh(raw: bytes, kind: str) -> Mesh:
    import trimesh  # heavy; imported where used

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # malformed uploads make trimesh warn; we judge the result
            loaded = trimesh.load(io.BytesIO(raw), file_type=kind, process=False, force="mesh")
    except Exception as exc:  # trimesh raises many kinds on bad input
        raise InvalidInput(f"the {kind.upper()} file cannot be read.") from exc
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    if faces.shape[0] == 0:
        raise InvalidInput(f"the {kind.upper()} file holds no triangles.")
    return Mesh(vertices, faces)


def require_closed(mesh: Mesh) -> None:
    """Unprocessable unless the mesh is a closed, consistently oriented 2-manifold."""
    topo = topology(mesh)
    problems = []
    if topo.boundary_edges:
        problems.append(f"{topo.boundary_edges} open edges")
    if topo.nonmanifold_edges:
        problems.append(f"{topo.nonmanifold_edges} edges shared by more than two faces")
    if topo.misoriented_edges:
        problems.append(f"{topo.misoriented_edges} inconsistently wound edges")
    if topo.degenerate_faces:
        problems.append(f"{topo.degenerate_faces} degenerate faces")
    if problems:
        raise Unprocessable(f"the mesh has {', '.join(problems)}.")
