"""Wall thickness of a closed mesh, per vertex, from a distance map of its voxelised solid (no I/O).

Method: the solid is voxelised (:func:`medweave.printing.voxelize.voxelize`) on a cubic grid,
and the Euclidean distance transform of its inside (Maurer et al. 2003, as in
``scipy.ndimage.distance_transform_edt``) gives at every interior point the radius of the largest
ball centred there that fits in the part. From each vertex a ray goes inward along the negative
vertex normal until it leaves the solid; the vertex's thickness is the diameter of the largest
such ball centred on that ray, 2 x max EDT. This is the local thickness of Hildebrand and
Ruegsegger ("A new method for the model-independent assessment of thickness in
three-dimensional images", J. Microscopy 185, 1997) restricted to the inward ray, the same ray
the shape diameter function (Shapira, Shamir, Cohen-Or, The Visual Computer 24, 2008) shoots;
on a plate of thickness t it is t, on a rod of diameter d it is d. The ray advances by sphere
tracing (Hart, The Visual Computer 12, 1996): by a quarter of the distance to the surface, never
less than half a voxel, so thin walls, where it matters, are sampled every half voxel.

The grid pitch is a quarter of the thinnest wall asked about (``resolve_mm``), made coarser if the
part would need more than ``max_voxels`` (8 million by default, about 100 MB of work arrays).
Voxel-centre distances are corrected by half a voxel; the result is good to about one pitch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medweave.errors import Unprocessable
from medweave.printing.mesh import Mesh, face_areas, face_normals, topology
from medweave.printing.voxelize import voxelize

MAX_VOXELS = 8_000_000
MAX_STEPS = 400


@dataclass(frozen=True)
class ThicknessMap:
    per_vertex: NDArray[np.float64]  # mm; NaN where a vertex could not be measured
    per_face: NDArray[np.float64]  # mm, at each face's centroid along its inward normal
    pitch: float  # voxel size used, mm
    minimum: float  # the summary is over faces, weighted by area
    p1: float
    p5: float
    median: float

    def summary(self) -> dict[str, float]:
        return {"min": self.minimum, "p1": self.p1, "p5": self.p5, "median": self.median, "pitch": self.pitch}


def vertex_normals(mesh: Mesh) -> NDArray[np.float64]:
    """Area-weighted unit vertex normals, pointing out for a mesh oriented CCW from outside."""
    weighted = face_normals(mesh) * face_areas(mesh)[:, None]
    normals = np.zeros_like(mesh.vertices)
    for corner in range(3):
        np.add.at(normals, mesh.faces[:, corner], weighted)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)


def choose_pitch(mesh: Mesh, resolve_mm: float, max_voxels: int = MAX_VOXELS) -> float:
    extent = np.ptp(mesh.vertices, axis=0) + 1e-9
    pitch = resolve_mm / 4.0
    budget_pitch = float(np.cbrt(np.prod(extent + 4 * pitch) / max_voxels))
    return max(pitch, budget_pitch)


class _Field:
    """The voxelised solid: trilinear occupancy and inside distance at any point in mm."""

    def __init__(self, mesh: Mesh, pitch: float):
        grid = voxelize(mesh, pitch, pad=3)
        mask = grid.data.astype(bool)
        if not mask.any():
            raise Unprocessable("the mesh encloses no voxels at this resolution.")
        self.pitch = pitch
        self.origin = grid.affine[:3, 3]
        self.inside = mask.astype(np.float32)
        self.edt = ndimage.distance_transform_edt(mask, sampling=pitch).astype(np.float32)

    def sample(self, field: NDArray[np.float32], pts: NDArray[np.float64]) -> NDArray[np.float64]:
        ijk = (pts - self.origin) / self.pitch  # (x, y, z) -> (i, j, k); arrays are [k, j, i]
        coords = np.stack([ijk[:, 2], ijk[:, 1], ijk[:, 0]])
        return ndimage.map_coordinates(field, coords, order=1, mode="constant", cval=0.0)

    def measure(self, start: NDArray[np.float64], direction: NDArray[np.float64]) -> NDArray[np.float64]:
        """Thickness at each start point along its inward direction: NaN where not measurable."""
        h = self.pitch
        n = start.shape[0]
        pos = start.copy()
        best = np.zeros(n)
        chord = np.full(n, np.inf)
        entered = np.zeros(n, dtype=bool)
        done = np.linalg.norm(direction, axis=1) == 0
        walked = np.zeros(n)
        prev_occ = np.ones(n)
        prev_step = np.zeros(n)
        for _ in range(MAX_STEPS):
            active = np.flatnonzero(~done)
            if active.size == 0:
                break
            p = pos[active]
            occ = self.sample(self.inside, p)
            dist = self.sample(self.edt, p)
            is_in = occ >= 0.5
            entered[active] |= is_in
            best[active] = np.maximum(best[active], np.where(is_in, dist, 0.0))
            left = entered[active] & ~is_in
            # Where the ray left: occupancy crosses 1/2 between the last two samples.
            po = prev_occ[active]
            frac = np.clip((po - 0.5) / np.maximum(po - occ, 1e-6), 0.0, 1.0)
            exit_at = walked[active] - prev_step[active] * (1.0 - frac)
            chord[active[left]] = exit_at[left]
            lost = ~entered[active] & (walked[active] > 3 * h)  # never found the inside
            done[active[left | lost]] = True
            step = np.maximum(0.5 * h, 0.25 * dist)
            pos[active] = p + direction[active] * step[:, None]
            walked[active] += step
            prev_occ[active] = occ
            prev_step[active] = step
        # The chord is exact for a ray square to a wall; the inscribed ball bounds oblique rays.
        ball = 2.0 * best + h
        return np.where(entered & np.isfinite(chord), np.minimum(chord, ball), np.nan)


def _weighted_percentiles(
    values: NDArray[np.float64], weights: NDArray[np.float64], qs: list[float]
) -> list[float]:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w) / w.sum()
    return [float(v[min(int(np.searchsorted(cum, q / 100.0)), v.shape[0] - 1)]) for q in qs]


def wall_thickness(
    mesh: Mesh, *, resolve_mm: float = 1.0, max_voxels: int = MAX_VOXELS, pitch: float | None = None
) -> ThicknessMap:
    """Per-vertex and per-face wall thickness in mm, with an area-weighted summary of the faces."""
    if mesh.n_triangles == 0 or not topology(mesh).watertight:
        raise Unprocessable("wall thickness needs a closed mesh.")
    h = pitch if pitch is not None else choose_pitch(mesh, resolve_mm, max_voxels)
    solid = _Field(mesh, h)
    per_vertex = solid.measure(mesh.vertices, -vertex_normals(mesh))
    per_face = solid.measure(mesh.triangles().mean(axis=1), -face_normals(mesh))
    ok = np.isfinite(per_face)
    if not ok.any():
        raise Unprocessable("the wall thickness could not be measured on this mesh.")
    p1, p5, med = _weighted_percentiles(per_face[ok], face_areas(mesh)[ok], [1, 5, 50])
    return ThicknessMap(per_vertex, per_face, float(h), float(per_face[ok].min()), p1, p5, med)
