"""Volume to print-ready surface: iso-surface, smoothing and watertight decimation (no I/O).

The pipeline is 3D Slicer's closed-surface export (vtkBinaryLabelmapToClosedSurfaceConversionRule
in Slicer's Segmentations module): flying edges (Schroeder, Maynard, Geveci, "Flying edges: a
high-performance scalable isocontouring algorithm", IEEE LDAV 2015; ``vtkFlyingEdges3D``, or
``vtkDiscreteFlyingEdges3D`` for label maps), then ``vtkWindowedSincPolyDataFilter`` (Taubin,
Zhang, Golub, "Optimal surface smoothing as filter design", ECCV 1996) with Slicer's defaults:
20 iterations, pass band 0.01 (Slicer's smoothing factor 0.5 maps to 10^(-4 x 0.5)), normalised
coordinates on, boundary and feature-edge smoothing off, non-manifold smoothing on. Slicer stops
there; we add an optional decimation with manifold3d's ``simplify``, which keeps the mesh a valid
manifold where ``vtkQuadricDecimation`` and fast-simplification were seen to open it (FIELD-NOTES).

After every step the topology is checked (:func:`medweave.printing.mesh.topology`) and, when
broken, repaired with :func:`medweave.printing.repair.repair`; if that fails the build fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medweave.errors import InvalidInput, Unprocessable
from medweave.printing.mesh import Mesh, signed_volume, topology
from medweave.printing.repair import from_manifold, repair, to_manifold
from medweave.printing.volume import Volume
from medweave.printing.vtkbridge import from_polydata, image_data, numpy_support, to_polydata

from vtkmodules.vtkFiltersCore import (  # isort: skip
    vtkFlyingEdges3D,
    vtkWindowedSincPolyDataFilter,
)
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D  # isort: skip

# Slicer's closed-surface defaults (vtkBinaryLabelmapToClosedSurfaceConversionRule).
SLICER_ITERATIONS = 20
SLICER_PASS_BAND = 0.01


@dataclass(frozen=True)
class StepReport:
    name: str
    triangles: int
    watertight: bool
    repaired: bool
    seconds: float


@dataclass(frozen=True)
class SurfaceResult:
    mesh: Mesh
    steps: list[StepReport] = field(default_factory=list)


def _flip(mesh: Mesh) -> Mesh:
    return Mesh(mesh.vertices, np.ascontiguousarray(mesh.faces[:, ::-1]))


def volume_to_mesh(volume: Volume, level: float, *, discrete: bool = False) -> Mesh:
    """The iso-surface at ``level`` (or of label ``level`` when ``discrete``) in patient LPS mm.

    The grid is padded with one voxel of background, so the surface closes where the object
    touches the border; faces are turned so normals point out (signed volume > 0), also when
    the affine mirrors an axis.
    """
    data = np.asarray(volume.data)
    if data.size == 0:
        raise InvalidInput("the volume is empty.")
    if discrete:
        padded = np.pad(data, 1, constant_values=0 if level != 0 else 1)
        contour: Any = vtkDiscreteFlyingEdges3D()
    else:
        lowest = data.min()
        if lowest < level:
            padded = np.pad(data, 1, constant_values=lowest)
        else:
            padded = np.pad(data.astype(np.float32), 1, constant_values=np.float32(level - 1.0))
        contour = vtkFlyingEdges3D()
    # Contour in voxel index space (the padding sits at index -1), then place with the affine.
    img = image_data(padded, (1.0, 1.0, 1.0), (-1.0, -1.0, -1.0))
    contour.SetInputData(img)
    contour.SetValue(0, float(level))
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    contour.Update()
    mesh = from_polydata(contour.GetOutput())
    if mesh.n_triangles == 0:
        raise Unprocessable("no surface at that threshold: nothing in the volume reaches it.")
    mesh = Mesh(volume.index_to_lps(mesh.vertices), mesh.faces)
    if signed_volume(mesh) < 0:
        mesh = _flip(mesh)
    return mesh


def smooth(mesh: Mesh, iterations: int = SLICER_ITERATIONS, pass_band: float = SLICER_PASS_BAND) -> Mesh:
    """Windowed-sinc smoothing as 3D Slicer does it; moves vertices only, so topology is kept."""
    if iterations <= 0 or mesh.n_triangles == 0:
        return mesh
    f = vtkWindowedSincPolyDataFilter()
    f.SetInputData(to_polydata(mesh))
    f.SetNumberOfIterations(int(iterations))
    f.SetPassBand(float(pass_band))
    f.BoundarySmoothingOff()
    f.FeatureEdgeSmoothingOff()
    f.SetFeatureAngle(120.0)
    f.NonManifoldSmoothingOn()
    f.NormalizeCoordinatesOn()
    f.Update()
    points = numpy_support.vtk_to_numpy(f.GetOutput().GetPoints().GetData()).astype(np.float64)
    return Mesh(points, mesh.faces)


def decimate(
    mesh: Mesh,
    target_triangles: int | None = None,
    *,
    ratio: float | None = None,
    tolerance: float | None = None,
) -> Mesh:
    """Fewer triangles with manifold3d ``simplify``, which keeps a valid manifold.

    Give ``target_triangles``, a ``ratio`` of the current count, or a ``tolerance`` in mm (no
    surface moves by more than it). For a target, the tolerance grows geometrically from a
    hundredth of the mean edge, then the bracket is narrowed (:func:`_between`) until the count
    is at or just under the target (within 10 %, or after 8 steps).
    """
    if target_triangles is None and ratio is not None:
        if not 0 < ratio <= 1:
            raise InvalidInput("the decimation ratio must be in (0, 1].")
        target_triangles = max(4, int(mesh.n_triangles * ratio))
    if target_triangles is None and tolerance is None:
        raise InvalidInput("give a target triangle count, a ratio or a tolerance.")
    solid = to_manifold(mesh)
    if solid.status().name != "NoError":
        solid = to_manifold(repair(mesh))
    if tolerance is not None:
        return _finish(from_manifold(solid.simplify(float(tolerance))))
    assert target_triangles is not None
    if solid.num_tri() <= target_triangles:
        return _finish(from_manifold(solid))
    tri = mesh.triangles()
    tol = 0.01 * float(np.linalg.norm(tri[:, 1] - tri[:, 0], axis=1).mean())
    above, above_tol = solid, 0.0
    below = None
    for _ in range(40):
        trial = above.simplify(tol)
        if trial.num_tri() <= target_triangles:
            below, below_tol = trial, tol
            break
        above, above_tol = trial, tol
        tol *= 2.0
    if below is None:
        return _finish(from_manifold(above))
    for _ in range(8):
        if below.num_tri() >= 0.9 * target_triangles:
            break
        mid = _between(above_tol, above.num_tri(), below_tol, below.num_tri(), 0.95 * target_triangles)
        trial = above.simplify(mid)
        if trial.num_tri() <= target_triangles:
            below, below_tol = trial, mid
        else:
            above, above_tol = trial, mid
    return _finish(from_manifold(below))


def _between(lo_tol: float, lo_count: int, hi_tol: float, hi_count: int, goal: float) -> float:
    """The next tolerance to try inside (lo_tol, hi_tol): where the count would reach ``goal`` if it
    fell as a power of the tolerance through the two trials (a secant in log-log space, which needs
    two or three trials where halving the bracket needed five to eight), kept 5 % away from the
    ends so the bracket always shrinks; plain halving while the lower end is 0."""
    if lo_tol <= 0 or lo_count <= hi_count or goal <= 0:
        return 0.5 * (lo_tol + hi_tol)
    power = float(np.log(lo_count / hi_count) / np.log(hi_tol / lo_tol))
    guess = lo_tol * (lo_count / goal) ** (1.0 / power)
    margin = 0.05 * (hi_tol - lo_tol)
    return min(max(guess, lo_tol + margin), hi_tol - margin)


def _finish(mesh: Mesh) -> Mesh:
    return mesh if signed_volume(mesh) >= 0 else _flip(mesh)


def _checked(name: str, make: Callable[[], Mesh], steps: list[StepReport]) -> Mesh:
    start = time.perf_counter()
    mesh = make()
    repaired = False
    if mesh.n_triangles == 0:
        raise Unprocessable(f"the {name} step left no triangles.")
    topo = topology(mesh)
    if not topo.ok or signed_volume(mesh) <= 0:
        mesh = repair(mesh)  # raises Unprocessable when it cannot
        repaired = True
        topo = topology(mesh)
    steps.append(StepReport(name, mesh.n_triangles, topo.watertight, repaired, time.perf_counter() - start))
    return mesh


def build_surface(
    volume: Volume,
    level: float,
    *,
    smooth_iterations: int = SLICER_ITERATIONS,
    target_triangles: int | None = None,
    discrete: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> SurfaceResult:
    """Extract, smooth and (optionally) decimate, checking and repairing after every step.

    ``progress(step, fraction)`` is called as each step finishes.
    """
    steps: list[StepReport] = []
    n_steps = 1 + (smooth_iterations > 0) + (target_triangles is not None)

    def report(name: str) -> None:
        if progress is not None:
            progress(name, len(steps) / n_steps)

    mesh = _checked("extract", lambda: volume_to_mesh(volume, level, discrete=discrete), steps)
    report("extract")
    if smooth_iterations > 0:
        src = mesh
        mesh = _checked("smooth", lambda: smooth(src, smooth_iterations), steps)
        report("smooth")
    if target_triangles is not None:
        src = mesh
        mesh = _checked("decimate", lambda: decimate(src, target_triangles), steps)
        report("decimate")
    return SurfaceResult(mesh, steps)
