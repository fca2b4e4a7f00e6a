"""Build orientation that needs the least support: a scored search over candidate directions (no I/O).

A face needs support when it faces downward more steeply than 45 degrees from vertical: the
self-supporting angle of material-extrusion and powder-bed guidance (ISO/ASTM 52910:2018,
"Additive manufacturing - Design - Requirements, guidelines and recommendations", 5.4; Thomas,
"The development of design rules for selective laser melting", PhD thesis, University of Wales
Institute Cardiff, 2009, which found 45 degrees the reliable self-supporting limit for SLM). In
numbers: with ``n`` the unit face normal after rotation, the face is an overhang when
``n_z < -cos(45 deg)``. Faces lying on the build plate (facing straight down, within 1 degree, and
within 0.05 mm of the lowest point) rest on the plate and are not counted.

Candidates for the downward direction: the six axis directions, 64 points of a Fibonacci sphere
(Gonzalez, "Measurement of areas on a sphere using Fibonacci and latitude-longitude lattices",
Math. Geosciences 42, 2010) and the normals of the 16 largest faces of the convex hull (a part
resting on a hull face is stable). The score is the overhang area in mm^2; ties (within 1 %) go to
the lower build height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import ConvexHull, QhullError

from medweave.printing.mesh import Mesh, face_areas, face_normals

SELF_SUPPORTING_DEG = 45.0
PLATE_ANGLE_DEG = 1.0
PLATE_TOLERANCE_MM = 0.05
N_FIBONACCI = 64
N_HULL_FACES = 16


@dataclass(frozen=True)
class Orientation:
    rotation: NDArray[np.float64]  # 3x3, applied as v @ rotation.T
    down: NDArray[np.float64]  # the part's direction (in its own coordinates) that faces the plate
    overhang_before_mm2: float  # as given, printed with -z down
    overhang_after_mm2: float
    height_mm: float
    scores: NDArray[np.float64]  # overhang area of every candidate, for the record

    def apply(self, mesh: Mesh) -> Mesh:
        return Mesh(mesh.vertices @ self.rotation.T, mesh.faces)


def fibonacci_sphere(n: int) -> NDArray[np.float64]:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (1.0 + 5.0**0.5) * i
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def rotation_to_down(d: NDArray[np.float64]) -> NDArray[np.float64]:
    """The proper rotation that turns unit vector ``d`` into (0, 0, -1) (Rodrigues' formula)."""
    d = d / np.linalg.norm(d)
    target = np.array([0.0, 0.0, -1.0])
    v = np.cross(d, target)
    c = float(d @ target)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * (1.0 / (1.0 + c))


def candidate_directions(mesh: Mesh) -> NDArray[np.float64]:
    axes = np.vstack([np.eye(3), -np.eye(3)])
    dirs = [axes, fibonacci_sphere(N_FIBONACCI)]
    try:
        hull = ConvexHull(mesh.vertices)
        tri = mesh.vertices[hull.simplices]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        area = np.linalg.norm(cross, axis=1)
        # Qhull's equations hold outward normals; a part resting on that face has it facing down.
        largest = np.argsort(area)[::-1][:N_HULL_FACES]
        dirs.append(hull.equations[largest, :3])
    except (QhullError, ValueError):
        pass  # flat or tiny input: the fixed candidates do
    out = np.vstack(dirs)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def overhang_areas(mesh: Mesh, downs: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Overhang area (mm^2) and build height (mm) for each downward direction, shape (c,)."""
    normals = face_normals(mesh)
    areas = face_areas(mesh)
    cos_limit = np.cos(np.radians(SELF_SUPPORTING_DEG))
    cos_plate = np.cos(np.radians(PLATE_ANGLE_DEG))
    scores = np.zeros(downs.shape[0])
    heights = np.zeros(downs.shape[0])
    for start in range(0, downs.shape[0], 16):
        d = downs[start : start + 16]
        depth = mesh.vertices @ d.T  # along the down direction: larger is lower
        lowest = depth.max(axis=0)
        heights[start : start + 16] = lowest - depth.min(axis=0)
        facing = normals @ d.T  # cos of the angle between the normal and straight down
        face_low = depth[mesh.faces].min(axis=1)  # the face's highest corner, per candidate
        on_plate = (facing > cos_plate) & (face_low >= lowest - PLATE_TOLERANCE_MM)
        over = (facing > cos_limit) & ~on_plate
        scores[start : start + 16] = areas @ over
    return scores, heights


def suggest_orientation(mesh: Mesh) -> Orientation:
    """The candidate rotation with the least overhang area (ties to the lower height)."""
    downs = candidate_directions(mesh)
    scores, heights = overhang_areas(mesh, downs)
    before, _ = overhang_areas(mesh, np.array([[0.0, 0.0, -1.0]]))
    tolerance = 0.01 * max(float(scores.min()), 1e-9) + 1e-6
    near_best = np.flatnonzero(scores <= scores.min() + tolerance)
    best = int(near_best[np.argmin(heights[near_best])])
    return Orientation(
        rotation_to_down(downs[best]),
        downs[best],
        float(before[0]),
        float(scores[best]),
        float(heights[best]),
        scores,
    )
