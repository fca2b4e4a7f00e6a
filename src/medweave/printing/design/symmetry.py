"""The mid-sagittal plane of a head or skull mask, found by symmetry registration (no I/O).

The plane {x : n.x = d} (LPS mm, n a unit vector towards the patient's left) is the one whose
reflection best maps the mask's surface onto itself. Following the surface-matching formulation of
Tuzikov, Colliot & Bloch ("Evaluation of the symmetry plane in 3D MR brain images", Pattern
Recognition Letters 24, 2003) and the robust criteria of Prima, Ourselin & Ayache ("Computation of
the mid-sagittal plane in 3-D brain images", IEEE TMI 21(2), 2002) and Liu, Collins & Rothfus
("Robust midsagittal plane extraction from normal and pathological 3-D neuroradiology images", IEEE
TMI 20(3), 2001): surface voxels of the mask are reflected and scored by their distance to the
nearest surface voxel (a Euclidean distance transform in mm), truncated at ``TRUNC_MM`` so that a
defect, a tumour or natural asymmetry only costs a bounded amount (an M-estimator, as in Prima et
al.). The search is a coarse grid over the normal's two angles (within ``MAX_TILT_DEG`` of the
patient's left-right axis from the DICOM orientation: the head can be tilted up to 15 degrees in a
scanner, Liu et al. report up to ~10) and the offset, then Nelder-Mead (scipy) from the best grid
points with a tighter truncation. The image axes are only a starting direction.

Thresholds: the fit fails when fewer than ``MIN_INLIERS`` (30 %) of the reflected surface points land
within ``INLIER_MM`` (2 mm) of the surface; a head has most of its surface symmetric, Liu et al. still
find the plane with large lesions, whose share of the surface is well below 70 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, optimize

from medweave.errors import InvalidInput
from medweave.printing.volume import Volume

MAX_TILT_DEG = 20.0
COARSE_STEP_DEG = 2.5
OFFSET_RANGE_MM = 12.0
TRUNC_COARSE_MM = 8.0
TRUNC_MM = 2.0
INLIER_MM = 2.0
MIN_INLIERS = 0.3
MAX_POINTS = 6000
MIN_VOXELS = 200


@dataclass(frozen=True)
class SymmetryPlane:
    normal: NDArray[np.float64]  # unit, LPS, pointing to the patient's left (x > 0)
    offset: float  # d in n.x = d, mm
    residual_mm: float  # mean truncated distance of the reflected surface points
    inlier_fraction: float  # share of reflected points within INLIER_MM of the surface

    def reflection(self) -> NDArray[np.float64]:
        """4x4 matrix reflecting LPS points across the plane."""
        n = self.normal
        m = np.eye(4)
        m[:3, :3] -= 2.0 * np.outer(n, n)
        m[:3, 3] = 2.0 * self.offset * n
        return m

    def signed_distance(self, xyz: NDArray[np.floating]) -> NDArray[np.float64]:
        return np.asarray(xyz, dtype=np.float64) @ self.normal - self.offset


def _normal(alpha_deg: float, beta_deg: float) -> NDArray[np.float64]:
    """Left-right axis turned by alpha about the vertical axis and beta about the AP axis."""
    v = np.array([1.0, np.tan(np.radians(alpha_deg)), np.tan(np.radians(beta_deg))])
    return v / np.linalg.norm(v)


class _Scorer:
    def __init__(self, mask: Volume, max_points: int, seed: int):
        m = np.asarray(mask.data).astype(bool)
        if int(m.sum()) < MIN_VOXELS:
            raise InvalidInput("The mask is too small to find a plane of symmetry.")
        si, sj, sk = mask.spacing
        cross = ndimage.generate_binary_structure(3, 1)
        surf = m & ~ndimage.binary_erosion(m, structure=cross)
        kji = np.argwhere(surf)
        rng = np.random.default_rng(seed)
        if len(kji) > max_points:
            kji = kji[rng.choice(len(kji), max_points, replace=False)]
        self.points = mask.index_to_lps(kji[:, ::-1].astype(np.float64))
        self.coarse = self.points[: max(500, max_points // 3)]
        self.dist = ndimage.distance_transform_edt(~surf, sampling=(sk, sj, si)).astype(np.float32)
        inv = np.linalg.inv(mask.affine)
        self.to_index = inv[:3, :3]
        self.to_index_t = inv[:3, 3]
        vox = np.argwhere(m)[:, ::-1].astype(np.float64).mean(axis=0)
        self.centroid = mask.index_to_lps(vox[None, :])[0]

    def distances(self, n: NDArray[np.float64], d: float, pts: NDArray[np.float64], trunc: float) -> NDArray:
        refl = pts - 2.0 * (pts @ n - d)[:, None] * n[None, :]
        ijk = refl @ self.to_index.T + self.to_index_t
        vals = ndimage.map_coordinates(self.dist, ijk[:, ::-1].T, order=1, mode="constant", cval=trunc)
        return np.minimum(vals, trunc)

    def cost(self, params: NDArray[np.float64], pts: NDArray[np.float64], trunc: float) -> float:
        n = _normal(params[0], params[1])
        d = float(n @ self.centroid) + params[2]
        return float(self.distances(n, d, pts, trunc).mean())


def fit_symmetry_plane(
    mask: Volume, *, max_tilt_deg: float = MAX_TILT_DEG, max_points: int = MAX_POINTS, seed: int = 0
) -> SymmetryPlane:
    """Mid-sagittal plane of a head or skull mask; InvalidInput when no plane fits."""
    scorer = _Scorer(mask, max_points, seed)
    angles = np.arange(-max_tilt_deg, max_tilt_deg + 1e-9, COARSE_STEP_DEG)
    offsets = np.arange(-OFFSET_RANGE_MM, OFFSET_RANGE_MM + 1e-9, 2.0)
    scored: list[tuple[float, float, float, float]] = []
    for a in angles:
        for b in angles:
            n = _normal(a, b)
            base = float(n @ scorer.centroid)
            for off in offsets:
                c = float(scorer.distances(n, base + off, scorer.coarse, TRUNC_COARSE_MM).mean())
                scored.append((c, a, b, off))
    scored.sort()
    best: tuple[float, NDArray[np.float64]] | None = None
    for _, a, b, off in scored[:3]:
        x = np.array([a, b, off])
        for trunc in (TRUNC_COARSE_MM / 2.0, TRUNC_MM):
            res = optimize.minimize(
                scorer.cost,
                x,
                args=(scorer.points, trunc),
                method="Nelder-Mead",
                options={"xatol": 0.05, "fatol": 1e-4, "initial_simplex": _simplex(x)},
            )
            x = res.x
        c = scorer.cost(x, scorer.points, TRUNC_MM)
        if best is None or c < best[0]:
            best = (c, x)
    assert best is not None
    cost, x = best
    n = _normal(x[0], x[1])
    d = float(n @ scorer.centroid) + float(x[2])
    dists = scorer.distances(n, d, scorer.points, TRUNC_MM)
    inliers = float(np.mean(dists <= INLIER_MM))
    if inliers < MIN_INLIERS or max(abs(x[0]), abs(x[1])) > max_tilt_deg + 5.0:
        raise InvalidInput("No plane of symmetry fits this mask: too little of it mirrors onto itself.")
    return SymmetryPlane(normal=n, offset=d, residual_mm=float(cost), inlier_fraction=inliers)


def _simplex(x: NDArray[np.float64]) -> NDArray[np.float64]:
    steps = np.array([1.5, 1.5, 1.0])  # degrees, degrees, mm
    return np.vstack([x, *(x + np.diag(steps))])


def angle_between_deg(n1: NDArray[np.floating], n2: NDArray[np.floating]) -> float:
    """Angle between two plane normals in degrees, ignoring their sign."""
    c = abs(float(np.dot(n1, n2) / (np.linalg.norm(n1) * np.linalg.norm(n2))))
    return float(np.degrees(np.arccos(min(1.0, c))))
