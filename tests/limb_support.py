"""Synthetic limb surface scans for the splint tests: a forearm, wrist and hand-ish closed mesh.

The limb is lofted from elliptical rings along its own axis ``u`` (0 at the proximal cut, ``length``
at the fingertips): 60 x 45 mm across the forearm, 55 x 35 mm at the wrist (u = 150 mm), a flat
hand 74 x 28 mm, closed by a short flat-ish cap at the proximal cut and a longer rounded cap over
the fingers. The wide direction is radial-ulnar, the thin one volar-dorsal; ``volar`` is the unit
vector toward the palm. A rotation and a shift place it off the image axes, as a scanner would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from numpy.typing import NDArray

from medweave.printing.mesh import Mesh

# (u mm, half-width radial-ulnar, half-thickness volar-dorsal)
FOREARM_PROFILE = ((0.0, 30.0, 22.5), (150.0, 27.5, 17.5), (180.0, 37.0, 14.0), (250.0, 36.0, 13.0))


@dataclass(frozen=True)
class Limb:
    mesh: Mesh
    axis: NDArray[np.float64]  # unit, proximal to distal
    volar: NDArray[np.float64]  # unit, toward the palm, perpendicular to axis
    proximal: NDArray[np.float64]  # the point u = 0 on the axis, in mm
    length: float  # mm along the axis from the proximal cut to the fingertips

    def along(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Position of points along the axis, mm from the proximal cut."""
        return (np.asarray(points, dtype=np.float64) - self.proximal) @ self.axis


def rotation(rx_deg: float, ry_deg: float, rz_deg: float) -> NDArray[np.float64]:
    rx, ry, rz = np.radians([rx_deg, ry_deg, rz_deg])
    mx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    my = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    mz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return mz @ my @ mx


def _loft(u: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64], n_ring: int) -> Mesh:
    """Rings of ellipses (x = a cos t, y = b sin t, z = u) closed by a pole at each end."""
    t = np.linspace(0.0, 2 * np.pi, n_ring, endpoint=False)
    inner = slice(1, len(u) - 1)  # the first and last u are the poles
    rings = np.stack(
        [a[inner, None] * np.cos(t), b[inner, None] * np.sin(t), np.repeat(u[inner, None], n_ring, axis=1)],
        axis=-1,
    ).reshape(-1, 3)
    n_rings = len(u) - 2
    south = np.array([[0.0, 0.0, u[0]]])
    north = np.array([[0.0, 0.0, u[-1]]])
    vertices = np.concatenate([south, rings, north])
    faces = []
    idx = np.arange(n_ring)
    nxt = (idx + 1) % n_ring
    faces.append(np.stack([np.zeros(n_ring, int), 1 + nxt, 1 + idx], axis=1))  # proximal pole looks down -z
    for r in range(n_rings - 1):
        a0, a1 = 1 + r * n_ring + idx, 1 + r * n_ring + nxt
        b0, b1 = a0 + n_ring, a1 + n_ring
        faces.append(np.stack([a0, a1, b1], axis=1))
        faces.append(np.stack([a0, b1, b0], axis=1))
    top = len(vertices) - 1
    last = 1 + (n_rings - 1) * n_ring
    faces.append(np.stack([last + idx, last + nxt, np.full(n_ring, top)], axis=1))
    return Mesh(vertices, np.concatenate(faces).astype(np.int64))


def _placed(local: Mesh, rot: NDArray[np.float64], shift: NDArray[np.float64]) -> Mesh:
    return Mesh(local.vertices @ rot.T + shift, local.faces)


def forearm(
    *,
    rotation_deg: tuple[float, float, float] = (25.0, -35.0, 40.0),
    shift: tuple[float, float, float] = (-12.0, 30.0, -140.0),
    n_ring: int = 96,
    proximal_cap: float = 6.0,
    distal_cap: float = 30.0,
) -> Limb:
    """The forearm-to-fingertips limb, 250 mm long, rotated and shifted (mm)."""
    length = FOREARM_PROFILE[-1][0]
    knots = np.array(FOREARM_PROFILE)
    body = np.linspace(proximal_cap, length - distal_cap, 120)
    # caps: the cross-section scales as sqrt(1 - s^2) over the cap (an elliptical dome)
    cap_p = proximal_cap * (1 - np.sin(np.linspace(0, np.pi / 2, 10, endpoint=False)))
    cap_d = length - distal_cap * (1 - np.sin(np.linspace(0, np.pi / 2, 20, endpoint=False)))
    u = np.concatenate([cap_p, body[1:-1], cap_d[::-1]])
    u = np.sort(u)
    u[0], u[-1] = 0.0, length
    hw = np.interp(u, knots[:, 0], knots[:, 1])
    ht = np.interp(u, knots[:, 0], knots[:, 2])
    scale = np.ones_like(u)
    p = u < proximal_cap
    scale[p] = np.sqrt(np.clip(1 - ((proximal_cap - u[p]) / proximal_cap) ** 2, 0, 1))
    d = u > length - distal_cap
    scale[d] = np.sqrt(np.clip(1 - ((u[d] - (length - distal_cap)) / distal_cap) ** 2, 0, 1))
    local = _loft(u, hw * scale, ht * scale, n_ring)
    rot = rotation(*rotation_deg)
    sh = np.asarray(shift, dtype=np.float64)
    # local frame: x radial-ulnar, y volar-dorsal (+y is volar), z the axis
    return Limb(_placed(local, rot, sh), rot[:, 2].copy(), rot[:, 1].copy(), sh.copy(), length)


def cylinder(
    *,
    radius: float = 30.0,
    length: float = 200.0,
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0),
    n_ring: int = 128,
    cap: float = 6.0,
) -> Limb:
    """A round 'limb' with short domed ends, whose shell arc lengths are known exactly."""
    body = np.linspace(cap, length - cap, 80)
    ends = cap * (1 - np.sin(np.linspace(0, np.pi / 2, 10, endpoint=False)))
    u = np.sort(np.concatenate([ends, body[1:-1], length - ends]))
    u[0], u[-1] = 0.0, length
    scale = np.ones_like(u)
    e = np.minimum(u, length - u) < cap
    scale[e] = np.sqrt(np.clip(1 - ((cap - np.minimum(u[e], length - u[e])) / cap) ** 2, 0, 1))
    local = _loft(u, radius * scale, radius * scale, n_ring)
    rot = rotation(*rotation_deg)
    sh = np.asarray(shift, dtype=np.float64)
    return Limb(_placed(local, rot, sh), rot[:, 2].copy(), rot[:, 1].copy(), sh.copy(), length)


def _trimesh(mesh: Mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=False)


def write_stl(mesh: Mesh, path: Path) -> Path:
    _trimesh(mesh).export(path, file_type="stl")
    return path


def write_ply(mesh: Mesh, path: Path) -> Path:
    _trimesh(mesh).export(path, file_type="ply")
    return path


def write_obj(mesh: Mesh, path: Path) -> Path:
    _trimesh(mesh).export(path, file_type="obj")
    return path


def read_mesh(path: Path) -> Mesh:
    """Back from any of the three, vertices merged (STL keeps none shared)."""
    loaded = trimesh.load(path, force="mesh", process=True)
    return Mesh(np.asarray(loaded.vertices, dtype=np.float64), np.asarray(loaded.faces, dtype=np.int64))
