"""A scalar image on a regular grid, placed in patient coordinates (no I/O).

``data`` is indexed ``[k, j, i]`` (slice, row, column), as DICOM stores it. ``affine`` maps a
homogeneous voxel index ``(i, j, k, 1)`` to millimetres in DICOM patient coordinates (LPS: x to
the patient's left, y to the posterior, z to the head). Every mesh made from a volume is placed
with this matrix, so it lands where the scan was: what 3D Slicer calls "export in world
coordinates".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class SourceInfo:
    """Where a volume came from; UIDs are identifiers, never shown as PHI."""

    modality: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_instance_uids: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was done on reading (resampled a tilt, and so on)
    # What a FHIR ImagingStudy series needs (no patient name or birth date here).
    sop_class_uid: str = ""
    number_of_instances: int = 0
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""


@dataclass(frozen=True)
class Volume:
    data: NDArray[np.floating] | NDArray[np.integer]
    affine: NDArray[np.float64]
    source: SourceInfo = field(default_factory=SourceInfo)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError("a volume has three dimensions")
        if self.affine.shape != (4, 4):
            raise ValueError("the affine is a 4x4 matrix")

    @property
    def shape(self) -> tuple[int, int, int]:
        k, j, i = self.data.shape
        return (k, j, i)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (i, j, k): column, row, slice."""
        cols = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(cols[0]), float(cols[1]), float(cols[2]))

    def index_to_lps(self, ijk: NDArray[np.floating]) -> NDArray[np.float64]:
        """Points given as (i, j, k) voxel indices, shape (n, 3), to LPS millimetres."""
        pts = np.asarray(ijk, dtype=np.float64)
        return pts @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, xyz: NDArray[np.floating]) -> NDArray[np.float64]:
        inv = np.linalg.inv(self.affine)
        pts = np.asarray(xyz, dtype=np.float64)
        return pts @ inv[:3, :3].T + inv[:3, 3]

    def with_data(self, data: NDArray[np.floating] | NDArray[np.integer]) -> Volume:
        if data.shape != self.data.shape:
            raise ValueError("the new data must have the volume's shape")
        return Volume(data, self.affine, self.source)
