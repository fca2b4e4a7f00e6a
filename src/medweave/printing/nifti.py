"""Read a NIfTI-1/NIfTI-2 image (.nii, .nii.gz) into a :class:`Volume` through nibabel.

NIfTI stores ``data[i, j, k]`` and an affine to RAS+ millimetres (x right, y anterior, z superior;
NIfTI-1 header documentation, "qform/sform", nifti1.h). DICOM patient coordinates are LPS (PS3.3
C.7.6.2.1.1), so the first two rows of the affine are negated, and the data is transposed to the
``[k, j, i]`` order a Volume uses. Intensities are returned as stored after nibabel's scaling
(``scl_slope``/``scl_inter``), as float32. 4D images are refused unless the fourth axis has length
one; so are affines that are not finite or not invertible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medweave.errors import InvalidInput, PayloadTooLarge
from medweave.printing.volume import SourceInfo, Volume

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_to_lps(affine: NDArray[np.float64]) -> NDArray[np.float64]:
    """A voxel-to-RAS affine as a voxel-to-LPS affine (negate the x and y rows)."""
    return RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)


def volume_from_array(
    data: NDArray[np.generic], affine_ras: NDArray[np.float64], *, name: str = "the image"
) -> Volume:
    """A volume from NIfTI-ordered data ``[i, j, k]`` (or ``[i, j, k, 1]``) and its RAS affine."""
    arr = np.asarray(data)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise InvalidInput(
            f"{name} has {arr.ndim} dimensions {tuple(arr.shape)}; only a single 3D volume can be used."
        )
    affine = np.asarray(affine_ras, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InvalidInput(f"The affine of {name} is not a finite 4x4 matrix.")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InvalidInput(f"The affine of {name} is singular, so the voxel positions are unknown.")
    values = np.ascontiguousarray(np.transpose(arr, (2, 1, 0)), dtype=np.float32)
    notes = ("NIfTI RAS affine converted to LPS",)
    return Volume(values, ras_to_lps(affine), SourceInfo(modality="", notes=notes))


def load_nifti(path: Path, *, max_bytes: int = 2**31) -> Volume:
    """Read ``path`` (.nii or .nii.gz); InvalidInput if it is not a usable 3D NIfTI image."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img = nib.load(str(path))
    except (ImageFileError, OSError, ValueError, EOFError) as exc:
        raise InvalidInput(f"The file {path.name} is not a readable NIfTI image.") from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise InvalidInput(f"The file {path.name} is not a NIfTI image.")
    shape = tuple(int(n) for n in img.shape)
    need = int(np.prod(shape, dtype=np.int64)) * 4
    if need > max_bytes:
        raise PayloadTooLarge(
            f"The volume would take {need / 2**20:.0f} MiB, over the limit of {max_bytes / 2**20:.0f} MiB."
        )
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 1):
        raise InvalidInput(f"{path.name} has dimensions {shape}; only a single 3D volume can be used.")
    affine = img.affine
    if affine is None:
        raise InvalidInput(f"The file {path.name} has no affine.")
    try:
        data = np.asanyarray(img.dataobj)
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidInput(f"The image data of {path.name} is truncated or unreadable.") from exc
    return volume_from_array(data, affine, name=path.name)
