"""A triangle mesh in millimetres and its topology checks (no I/O).

Faces are counter-clockwise seen from outside, so normals point out and a closed mesh has a
positive signed volume. These checks are what every surface step is followed by: a mesh that is
watertight, edge-manifold and consistently oriented can be handed to manifold3d and to a slicer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Mesh:
    vertices: NDArray[np.float64]  # (n, 3) millimetres
    faces: NDArray[np.int64]  # (m, 3) vertex indices

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError("vertices are an (n, 3) array")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError("faces are an (m, 3) array")

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])

    def triangles(self) -> NDArray[np.float64]:
        """(m, 3, 3): the corners of every face."""
        return self.vertices[self.faces]


def face_normals(mesh: Mesh) -> NDArray[np.float64]:
    """Unit normals by the right-hand rule; zero for degenerate faces."""
    tri = mesh.triangles()
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def face_areas(mesh: Mesh) -> NDArray[np.float64]:
    tri = mesh.triangles()
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def signed_volume(mesh: Mesh) -> float:
    """Volume in mm^3 by the divergence theorem; positive when normals point out."""
    tri = mesh.triangles()
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


@dataclass(frozen=True)
class Topology:
    boundary_edges: int  # edges used by one face: holes
    nonmanifold_edges: int  # edges used by three or more faces
    misoriented_edges: int  # edges both of whose faces run them the same way
    degenerate_faces: int  # faces with a repeated vertex

    @property
    def watertight(self) -> bool:
        return self.boundary_edges == 0 and self.nonmanifold_edges == 0

    @property
    def consistent(self) -> bool:
        return self.misoriented_edges == 0

    @property
    def ok(self) -> bool:
        return self.watertight and self.consistent and self.degenerate_faces == 0


def topology(mesh: Mesh) -> Topology:
    """Count the edges that keep a mesh from being a closed, oriented 2-manifold."""
    f = mesh.faces
    degenerate = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    g = f[~degenerate]
    a = np.concatenate([g[:, 0], g[:, 1], g[:, 2]]).astype(np.int64)
    b = np.concatenate([g[:, 1], g[:, 2], g[:, 0]]).astype(np.int64)
    n = np.int64(max(int(f.max(initial=0)) + 1, 1))
    # One integer per edge (row-wise unique on pairs is several times slower on large meshes).
    _, edge_use = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_counts=True)
    _, directed_use = np.unique(a * n + b, return_counts=True)
    return Topology(
        boundary_edges=int((edge_use == 1).sum()),
        nonmanifold_edges=int((edge_use > 2).sum()),
        misoriented_edges=int((directed_use > 1).sum()),
        degenerate_faces=int(degenerate.sum()),
    )
