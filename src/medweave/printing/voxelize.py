"""A closed mesh to a solid mask on a regular grid, through VTK's polydata stencil (no I/O).

Used by the wall-thickness map, by the splint (an offset shell around a limb scan) and by the
tests that compare a written implant with the true missing bone on the CT's own grid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medweave.printing.mesh import Mesh
from medweave.printing.volume import Volume
from medweave.printing.vtkbridge import numpy_support, to_polydata

from vtkmodules.vtkImagingStencil import vtkImageStencilToImage, vtkPolyDataToImageStencil  # isort: skip


def voxelize(mesh: Mesh, pitch: float, *, pad: int = 2) -> Volume:
    """Mask (uint8, 1 inside) on an axis-aligned grid of ``pitch`` mm around the mesh.

    The returned volume's affine maps its voxel indices to the mesh's coordinates.
    """
    if pitch <= 0:
        raise ValueError("pitch must be positive")
    lo = mesh.vertices.min(axis=0) - pad * pitch
    hi = mesh.vertices.max(axis=0) + pad * pitch
    dims = np.ceil((hi - lo) / pitch).astype(int) + 1
    return voxelize_on(
        mesh, origin=lo, spacing=(pitch, pitch, pitch), dims=(int(dims[0]), int(dims[1]), int(dims[2]))
    )


def voxelize_on(
    mesh: Mesh,
    *,
    origin: NDArray[np.float64] | tuple[float, float, float],
    spacing: tuple[float, float, float],
    dims: tuple[int, int, int],
) -> Volume:
    """Mask on a given axis-aligned grid: ``dims`` voxels along (x, y, z) from ``origin``."""
    stencil = vtkPolyDataToImageStencil()
    stencil.SetInputData(to_polydata(mesh))
    stencil.SetOutputOrigin(*[float(v) for v in origin])
    stencil.SetOutputSpacing(*spacing)
    stencil.SetOutputWholeExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
    to_image = vtkImageStencilToImage()
    to_image.SetInputConnection(stencil.GetOutputPort())
    to_image.SetInsideValue(1)
    to_image.SetOutsideValue(0)
    to_image.SetOutputScalarTypeToUnsignedChar()
    to_image.Update()
    out = to_image.GetOutput()
    mask = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    affine = np.eye(4)
    affine[0, 0], affine[1, 1], affine[2, 2] = spacing
    affine[:3, 3] = origin
    return Volume(mask.astype(np.uint8), affine)
