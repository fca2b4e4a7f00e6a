"""Overlap and surface-distance scores between two masks on the same grid (no I/O).

The definitions follow MedPy (``medpy.metric.binary``), which the MICCAI AutoImplant challenges
used to rank cranial implants (Li et al., "AutoImplant 2020", IEEE TMI 40(9), 2021):

* ``dice``: 2|A and B| / (|A| + |B|) (Dice, Ecology 26(3), 1945); 1.0 when both are empty.
* surface voxels: the mask minus its erosion by the 6-neighbourhood (``binary_erosion`` with a
  cross, as MedPy does); distances are Euclidean distance transforms in mm (voxel spacing honoured).
* ``hd95``: the 95th percentile of the pooled distances from A's surface to B's and from B's to A's
  (MedPy's ``hd95``).

Spacing is given as (i, j, k), the order of ``Volume.spacing``; arrays are indexed [k, j, i].
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medweave.errors import InvalidInput
from medweave.printing.volume import Volume

Mask = NDArray[np.generic] | Volume


def _array(m: Mask) -> NDArray[np.bool_]:
    data = m.data if isinstance(m, Volume) else np.asarray(m)
    if data.ndim != 3:
        raise InvalidInput("A mask has three dimensions.")
    return data.astype(bool)


def _sampling(a: Mask, spacing: tuple[float, float, float] | None) -> tuple[float, float, float]:
    if spacing is None:
        if not isinstance(a, Volume):
            raise InvalidInput("Give the voxel spacing, or pass volumes.")
        spacing = a.spacing
    si, sj, sk = (float(s) for s in spacing)
    if min(si, sj, sk) <= 0:
        raise InvalidInput("Voxel spacing must be positive.")
    return (sk, sj, si)


def _pair(a: Mask, b: Mask) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    aa, bb = _array(a), _array(b)
    if aa.shape != bb.shape:
        raise InvalidInput("The two masks must be on the same grid.")
    return aa, bb


def dice(a: Mask, b: Mask) -> float:
    """Dice similarity coefficient of two masks."""
    aa, bb = _pair(a, b)
    total = int(aa.sum()) + int(bb.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(aa & bb)) / total


def surface(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Boundary voxels: the mask minus its 6-neighbourhood erosion."""
    cross = ndimage.generate_binary_structure(3, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=cross, iterations=1)


def surface_distances(
    a: Mask, b: Mask, spacing: tuple[float, float, float] | None = None
) -> NDArray[np.float64]:
    """Distance in mm from every surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    aa, bb = _pair(a, b)
    if not aa.any() or not bb.any():
        raise InvalidInput("Surface distances need two non-empty masks.")
    sa, sb = surface(aa), surface(bb)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=_sampling(a, spacing))
    return np.asarray(dist_to_b[sa], dtype=np.float64)


def hd95(a: Mask, b: Mask, spacing: tuple[float, float, float] | None = None) -> float:
    """95th percentile symmetric surface distance (Hausdorff 95) in mm."""
    d_ab = surface_distances(a, b, spacing)
    d_ba = surface_distances(b, a, spacing if spacing is not None else _spacing_of(a))
    return float(np.percentile(np.hstack((d_ab, d_ba)), 95))


def assd(a: Mask, b: Mask, spacing: tuple[float, float, float] | None = None) -> float:
    """Average symmetric surface distance in mm."""
    d_ab = surface_distances(a, b, spacing)
    d_ba = surface_distances(b, a, spacing if spacing is not None else _spacing_of(a))
    return float(np.hstack((d_ab, d_ba)).mean())


def _spacing_of(a: Mask) -> tuple[float, float, float] | None:
    return a.spacing if isinstance(a, Volume) else None
