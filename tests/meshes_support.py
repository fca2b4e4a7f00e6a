"""Shared test shapes for the printing tests, built from closed-form geometry (no files).

A sphere, a hollow sphere shell of known wall, a skull-like ellipsoidal shell as a voxel mask, an
overhanging bracket, two overlapping spheres in one self-intersecting mesh, and broken meshes.
"""

from __future__ import annotations

import manifold3d
import numpy as np
import trimesh

from medweave.printing.mesh import Mesh
from medweave.printing.volume import Volume


def _from_trimesh(tm: trimesh.Trimesh) -> Mesh:
    return Mesh(np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int64))


def _from_manifold(solid: manifold3d.Manifold) -> Mesh:
    out = solid.to_mesh64()
    return Mesh(
        np.array(out.vert_properties, dtype=np.float64)[:, :3].copy(), np.array(out.tri_verts, dtype=np.int64)
    )


def sphere(
    radius: float = 10.0, subdivisions: int = 3, centre: tuple[float, float, float] = (0, 0, 0)
) -> Mesh:
    """Icosphere: 20 * 4**subdivisions triangles, outward normals."""
    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(
        np.asarray(tm.vertices) + np.asarray(centre, dtype=float), np.asarray(tm.faces, dtype=np.int64)
    )


def hollow_sphere(
    outer: float = 15.0,
    wall: float = 2.0,
    subdivisions: int = 4,
    inner_offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Mesh:
    """A spherical shell: outer sphere plus an inward-facing inner sphere (moved to thin one side)."""
    out = sphere(outer, subdivisions)
    inner = sphere(outer - wall, subdivisions, centre=inner_offset)
    faces = np.concatenate([out.faces, inner.faces[:, ::-1] + out.vertices.shape[0]])
    return Mesh(np.concatenate([out.vertices, inner.vertices]), faces)


def skull_volume(n: int = 96, spacing: float = 2.0, *, flip_x: bool = True) -> Volume:
    """A skull-like ellipsoidal shell as a uint8 mask on an n^3 grid, with a flipped-axis affine.

    Semi-axes 0.42n, 0.36n, 0.40n voxels; wall 0.07n voxels; a hole for the foramen magnum.
    """
    k, j, i = np.mgrid[0:n, 0:n, 0:n].astype(np.float32)
    c = (n - 1) / 2.0
    r_out = np.sqrt(((i - c) / (0.42 * n)) ** 2 + ((j - c) / (0.36 * n)) ** 2 + ((k - c) / (0.40 * n)) ** 2)
    r_in = np.sqrt(((i - c) / (0.35 * n)) ** 2 + ((j - c) / (0.29 * n)) ** 2 + ((k - c) / (0.33 * n)) ** 2)
    mask = (r_out <= 1.0) & (r_in > 1.0)
    mask &= ~((k < c) & ((i - c) ** 2 + (j - c) ** 2 < (0.08 * n) ** 2))
    affine = np.diag([-spacing if flip_x else spacing, spacing, spacing, 1.0])
    affine[:3, 3] = (100.0, -50.0, 20.0)
    return Volume(mask.astype(np.uint8), affine)


def box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> Mesh:
    size = np.subtract(hi, lo)
    return _from_manifold(manifold3d.Manifold.cube(tuple(size)).translate(tuple(lo)))


def l_bracket() -> Mesh:
    """A Γ-shaped bracket standing on the plate: a 10x10x40 mm post with a 30 mm arm at the top.

    Printed as is, the arm's 30x10 mm underside is an overhang; lying on its side it needs none.
    """
    post = manifold3d.Manifold.cube((10.0, 10.0, 40.0))
    arm = manifold3d.Manifold.cube((40.0, 10.0, 8.0)).translate((0.0, 0.0, 32.0))
    return _from_manifold(post + arm)


def overlapping_spheres() -> Mesh:
    """Two spheres that overlap, concatenated without a Boolean: one self-intersecting mesh."""
    a = sphere(10.0, 3)
    b = sphere(9.0, 3, centre=(11.0, 0.7, -0.4))  # not a mirror image: no exact edge-on-edge contacts
    return Mesh(
        np.concatenate([a.vertices, b.vertices]), np.concatenate([a.faces, b.faces + a.vertices.shape[0]])
    )


def folded_sphere(depth: float = 1.5, radius: float = 10.0) -> Mesh:
    """A sphere whose top cap is pushed down through the rest of the surface (a self-fold)."""
    s = sphere(radius, 3)
    turn = 0.3  # tilt first, so the pushed cap is not the mirror image of the bottom (no edge-on-edge)
    rot = np.array([[1, 0, 0], [0, np.cos(turn), -np.sin(turn)], [0, np.sin(turn), np.cos(turn)]])
    v = s.vertices @ rot.T
    cap = v[:, 2] > 0.6 * radius
    v[cap, 2] -= depth * radius
    return Mesh(v, s.faces)


def open_sphere(n_removed: int = 3) -> Mesh:
    """A sphere with a few faces removed: a hole with open (boundary) edges."""
    s = sphere(10.0, 2)
    return Mesh(s.vertices, s.faces[n_removed:])


def nonmanifold_mesh() -> Mesh:
    """A sphere with an extra fin triangle on one edge: that edge is used by three faces."""
    s = sphere(10.0, 2)
    a, b = s.faces[0, 0], s.faces[0, 1]
    tip = s.vertices[[a, b]].mean(axis=0) * 1.5
    vertices = np.concatenate([s.vertices, tip[None]])
    faces = np.concatenate([s.faces, [[a, b, s.vertices.shape[0]]]])
    return Mesh(vertices, faces.astype(np.int64))


def unwelded(mesh: Mesh) -> Mesh:
    """The same triangles, each with its own three vertices (as an STL stores them)."""
    return Mesh(mesh.triangles().reshape(-1, 3).copy(), np.arange(mesh.n_triangles * 3).reshape(-1, 3))


def trimesh_of(mesh: Mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)


__all__ = [
    "_from_trimesh",
    "box",
    "folded_sphere",
    "hollow_sphere",
    "l_bracket",
    "nonmanifold_mesh",
    "open_sphere",
    "overlapping_spheres",
    "skull_volume",
    "sphere",
    "trimesh_of",
    "unwelded",
]
