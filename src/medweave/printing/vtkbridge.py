"""Meshes and volumes to and from VTK, the engine 3D Slicer builds its surfaces with (no I/O).

VTK is the ``print`` extra; importing this module without it raises a clear
:class:`~medweave.errors.ConfigurationError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medweave.errors import ConfigurationError
from medweave.printing.mesh import Mesh

try:
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonCore import VTK_UNSIGNED_CHAR, vtkIdTypeArray, vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
except ImportError as exc:  # pragma: no cover - the print extra is part of dev
    raise ConfigurationError("3D printing needs the 'print' extra: pip install 'medweave[print]'") from exc

__all__ = ["VTK_UNSIGNED_CHAR", "from_polydata", "image_data", "to_polydata"]


def to_polydata(mesh: Mesh) -> Any:
    points = vtkPoints()
    points.SetData(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(mesh.vertices, dtype=np.float64), deep=True)
    )
    n = mesh.n_triangles
    offsets = numpy_support.numpy_to_vtk(
        np.arange(0, 3 * n + 1, 3, dtype=np.int64), deep=True, array_type=vtkIdTypeArray().GetDataType()
    )
    conn = numpy_support.numpy_to_vtk(
        np.ascontiguousarray(mesh.faces.ravel(), dtype=np.int64),
        deep=True,
        array_type=vtkIdTypeArray().GetDataType(),
    )
    cells = vtkCellArray()
    cells.SetData(offsets, conn)
    poly = vtkPolyData()
    poly.SetPoints(points)
    poly.SetPolys(cells)
    return poly


def from_polydata(poly: Any) -> Mesh:
    """Triangles only: strips, lines and vertices are dropped (the filters we use make none)."""
    n_points = poly.GetNumberOfPoints()
    if n_points == 0 or poly.GetPolys().GetNumberOfCells() == 0:
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    vertices = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    polys = poly.GetPolys()
    offsets = numpy_support.vtk_to_numpy(polys.GetOffsetsArray())
    conn = numpy_support.vtk_to_numpy(polys.GetConnectivityArray())
    if not np.all(np.diff(offsets) == 3):
        raise ValueError("VTK returned polygons that are not triangles")
    return Mesh(vertices, conn.reshape(-1, 3).astype(np.int64))


def image_data(
    array: NDArray[Any],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Any:
    """A vtkImageData over ``array[k, j, i]`` with axis-aligned spacing (i, j, k)."""
    k, j, i = array.shape
    img = vtkImageData()
    img.SetDimensions(i, j, k)
    img.SetSpacing(*spacing)
    img.SetOrigin(*origin)
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True))
    return img
