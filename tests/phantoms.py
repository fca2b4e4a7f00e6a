"""Synthetic head CT phantoms with a skull defect, for the segmentation and implant tests.

The head is built in its own frame (u to the patient's left, v posterior, w superior, millimetres,
origin at the head centre), where the mid-sagittal plane is u = 0, then rotated by ``tilt_deg`` about
the head centre and placed off the image centre, so it is symmetric about no image axis. The skull is
a closed ellipsoidal shell 4-8 mm thick; with ``asymmetry`` the left half is 1 mm wider and 1.5 mm
longer than the right, and an outer bump (2.5 mm high) sits on one side away from the defect. The
defect is a cylinder through the shell along a direction from the head centre; ``missing`` is the
bone inside it. Values in Hounsfield units: air -1000, scalp and soft tissue +40, brain +35, bone
1000 (diploe) to 1800 (cortex), plus Gaussian noise (sd 20 HU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medweave.printing.volume import SourceInfo, Volume

# direction of the defect (head frame), its radius (mm), and where the asymmetric bump goes
DEFECTS: dict[str, tuple[tuple[float, float, float], float, tuple[float, float, float]]] = {
    "left-parietal": ((0.6, 0.45, 0.65), 20.0, (-0.5, -0.7, 0.3)),
    "right-frontal": ((-0.55, -0.7, 0.45), 18.0, (-0.5, 0.6, -0.2)),
    "left-temporal": ((0.92, 0.1, 0.15), 17.0, (-0.3, 0.5, 0.8)),
    "right-occipital": ((-0.45, 0.8, 0.25), 18.0, (0.5, -0.6, 0.4)),
}
HEAD_CENTRE = (2.3, -1.7, 1.1)  # LPS mm, off the image centre on purpose


@dataclass(frozen=True)
class DefectInfo:
    name: str
    direction: NDArray[np.float64]  # unit vector in LPS from the head centre
    radius_mm: float


@dataclass(frozen=True)
class Phantom:
    volume: Volume  # float32 HU, modality CT
    skull: Volume  # uint8: the bone as scanned (without the missing part)
    skull_full: Volume  # uint8: the bone before the defect
    missing: Volume  # uint8: the bone removed by the defect (the ideal implant)
    head: Volume  # uint8: everything inside the skin
    defect: DefectInfo | None
    plane_normal: NDArray[np.float64]  # the true mid-sagittal plane n.x = d (LPS), n to the left
    plane_offset: float
    centre: NDArray[np.float64]


def rotation(tilt_deg: tuple[float, float, float]) -> NDArray[np.float64]:
    """Rz @ Ry @ Rx for angles in degrees about x, y, z."""
    rx, ry, rz = np.radians(tilt_deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def _unit(v: tuple[float, float, float]) -> NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def skull_phantom(
    *,
    size: int = 128,
    spacing_mm: float | tuple[float, float, float] = 1.0,
    tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    asymmetry: bool = True,
    defect: str | None = "left-parietal",
    seed: int = 0,
) -> Phantom:
    """A head CT of ``size`` mm field of view per axis (``size`` voxels at 1 mm).

    ``spacing_mm`` is one value or (i, j, k) = (x, y, z) in mm; the voxel count along an axis is
    ``round(size / spacing)``. ``defect`` names a key of ``DEFECTS`` or None for an intact skull.
    """
    sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    n = np.maximum(np.round(size / sp).astype(int), 8)  # (ni, nj, nk)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(sp)
    affine[:3, 3] = -0.5 * (n - 1) * sp + np.array([0.6, -0.9, 0.4])
    rot = rotation(tilt_deg)
    centre = np.asarray(HEAD_CENTRE)

    # head-frame coordinates of every voxel centre, as [k, j, i] arrays
    axes = [affine[a, 3] + sp[a] * np.arange(n[a]) - centre[a] for a in range(3)]
    x = axes[0][None, None, :].astype(np.float32)
    y = axes[1][None, :, None].astype(np.float32)
    z = axes[2][:, None, None].astype(np.float32)
    rt = rot.T.astype(np.float32)  # LPS -> head frame
    u = rt[0, 0] * x + rt[0, 1] * y + rt[0, 2] * z
    v = rt[1, 0] * x + rt[1, 1] * y + rt[1, 2] * z
    w = rt[2, 0] * x + rt[2, 1] * y + rt[2, 2] * z
    r = np.sqrt(u * u + v * v + w * w) + np.float32(1e-6)
    eu, ev, ew = u / r, v / r, w / r

    side = 1.0 / (1.0 + np.exp(-u / 4.0)) if asymmetry else np.float32(0.0)  # 1 on the left
    a = 45.0 + 1.0 * side
    b = 52.0 + 1.5 * side
    c = 40.0
    r_out = 1.0 / np.sqrt((eu / a) ** 2 + (ev / b) ** 2 + (ew / c) ** 2)
    info = DEFECTS[defect] if defect is not None else None
    if asymmetry:
        bump_dir = _unit(info[2]) if info else _unit((-0.5, -0.7, 0.3))
        cosang = eu * bump_dir[0] + ev * bump_dir[1] + ew * bump_dir[2]
        r_out = r_out + 2.5 * np.exp(-(1.0 - cosang) / 0.03)
    thick = 6.0 + 1.5 * ew - 0.5 * ev  # 4 to 8 mm, symmetric in u
    r_in = r_out - thick
    skull_full = (r <= r_out) & (r >= r_in)
    head = r <= r_out + 4.5
    brain = r < r_in

    missing = np.zeros_like(skull_full)
    defect_info = None
    if info is not None:
        d = _unit(info[0])
        along = u * d[0] + v * d[1] + w * d[2]
        perp2 = r * r - along * along
        cyl = (along > 0) & (perp2 <= info[1] ** 2)
        missing = skull_full & cyl
        defect_info = DefectInfo(defect or "", rot @ d, info[1])
    skull = skull_full & ~missing

    depth = np.clip((r - r_in) / thick, 0.0, 1.0)
    bone_hu = 1800.0 - 800.0 * (1.0 - np.abs(2.0 * depth - 1.0))
    hu = np.full(skull.shape, -1000.0, dtype=np.float32)
    hu[head] = 40.0
    hu[brain] = 35.0
    hu[skull] = bone_hu[skull]
    rng = np.random.default_rng(seed)
    hu += rng.normal(0.0, 20.0, size=hu.shape).astype(np.float32)

    src = SourceInfo(modality="CT")
    normal = rot @ np.array([1.0, 0.0, 0.0])

    def mask(m: NDArray[np.bool_]) -> Volume:
        return Volume(m.astype(np.uint8), affine, src)

    return Phantom(
        volume=Volume(hu, affine, src),
        skull=mask(skull),
        skull_full=mask(skull_full),
        missing=mask(missing),
        head=mask(head),
        defect=defect_info,
        plane_normal=normal,
        plane_offset=float(normal @ centre),
        centre=centre,
    )
