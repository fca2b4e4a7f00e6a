"""A patient-specific forearm-and-wrist splint from a closed limb surface scan (no I/O).

The pipeline is the one the 3D-printed orthosis literature describes (surface scan, offset,
shell, trim, perforate: Paterson et al. 2015, "Comparing additive manufacturing technologies for
customised wrist splints", Rapid Prototyping Journal 21(3); Li & Tanaka 2018, "Rapid customization
system for 3D-printed splint using programmable modeling technique", 3D Printing in Medicine 4:5;
Chen et al. 2017, "Application of 3D-printed and patient-specific cast for the treatment of distal
radius fractures", 3D Printing in Medicine 3:11), done here on a voxel grid:

1. the limb axis is the principal axis of the area-weighted surface, refined by a line through the
   centroids of its cross-sections; the volar direction is given, or by convention the thin
   direction of the cross-section signed toward the scan's -z (a limb scanned palm down);
2. the limb is voxelized on a grid aligned with that frame (``pitch_mm``) and its signed distance
   is taken (an EDT, made exact near the shell with VTK's point-to-mesh distance);
3. the shell is the band ``clearance <= d <= clearance + thickness``, cut to the length window
   along the axis and to the coverage sector (a volar half-shell, or the whole circumference but
   a slot so it can be put on), minus ventilation holes on an (axial, arc-length) grid, each a
   cylinder along the local surface normal whose centre keeps one hole radius plus
   ``edge_margin_mm`` from every edge;
4. the pieces are combined as distance fields with a smooth minimum (Quilez's polynomial smin,
   radius 1 mm or a third of the wall), which rounds every edge lightly and leaves the walls exact.

The result is a float32 field in mm (positive inside the splint, level 0) for the iso-surface and
its mask, both on the frame-aligned grid whose affine maps back to the scan's coordinates.

Defaults are design defaults for the orthotist to set, not clinical advice. Thickness 3 mm: close
to the 3.2 mm (1/8 in) thermoplastic sheet usual for forearm-based splints (Coppard & Lohman,
Introduction to Orthotics). Clearance 1 mm, distal offset 15 mm, vents 6 mm at 15 mm, slot 30 deg,
edge margin 5 mm, and the 10 mm kept from the proximal cut: configurable defaults. Limits: a wall
of 1.5-6 mm, a clearance of 0-5 mm, vents of 0 (none) or 3-15 mm with a spacing over one diameter
plus two walls (so the web between holes is never thinner than two walls): configurable defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medweave.errors import InvalidInput, PayloadTooLarge, Unprocessable
from medweave.printing.design import Cancelled
from medweave.printing.mesh import Mesh, face_areas, topology
from medweave.printing.volume import Volume
from medweave.printing.voxelize import voxelize_on

PROXIMAL_MARGIN_MM = 10.0  # kept free at the scan's proximal cut, which is no anatomy
MAX_VOXELS = 40_000_000  # about 2 GB of float64 work arrays
STEPS = 7

Vec = NDArray[np.float64]


@dataclass(frozen=True)
class LimbFrame:
    origin: Vec  # a point on the axis, mm
    axis: Vec  # unit, proximal to distal
    volar: Vec  # unit, perpendicular to axis
    side: Vec  # volar x axis, so (side, volar, axis) is right-handed
    s_min: float  # the scan's extent along the axis from origin, mm
    s_max: float

    @property
    def rotation(self) -> Vec:
        """Columns: the frame's x (side), y (volar) and z (axis) in scan coordinates."""
        return np.column_stack([self.side, self.volar, self.axis])


@dataclass(frozen=True)
class SplintDesign:
    field: Volume  # float32 mm, positive inside the splint
    level: float
    mask: Volume  # uint8
    params: dict[str, Any]
    stats: dict[str, Any]


def _unit(v: Any, name: str) -> Vec:
    arr = np.asarray(v, dtype=np.float64).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.linalg.norm(arr) < 1e-9:
        raise InvalidInput(f"{name} must be a non-zero 3-vector.")
    return arr / np.linalg.norm(arr)


def _validate(p: dict[str, Any]) -> None:
    def rng(name: str, lo: float, hi: float) -> None:
        v = p[name]
        if not isinstance(v, int | float) or not np.isfinite(v) or not lo <= v <= hi:
            raise InvalidInput(f"{name} must be between {lo:g} and {hi:g}, got {v!r}.")

    rng("thickness_mm", 1.5, 6.0)
    rng("clearance_mm", 0.0, 5.0)
    rng("distal_offset_mm", 0.0, 300.0)
    rng("edge_margin_mm", 0.0, 30.0)
    rng("opening_deg", 10.0, 120.0)
    rng("pitch_mm", 0.25, 1.5)
    if p["length_mm"] is not None:
        rng("length_mm", 30.0, 700.0)
    if p["coverage"] not in ("volar", "circumferential"):
        raise InvalidInput("coverage must be 'volar' or 'circumferential'.")
    if p["pitch_mm"] > p["thickness_mm"] / 2:
        raise InvalidInput(
            "pitch_mm must be at most half the wall thickness, so the wall is two voxels thick."
        )
    dia, spacing = p["vent_diameter_mm"], p["vent_spacing_mm"]
    if not isinstance(dia, int | float) or not (dia == 0 or 3.0 <= dia <= 15.0):
        raise InvalidInput(f"vent_diameter_mm must be 0 (no vents) or between 3 and 15, got {dia!r}.")
    if dia > 0 and (not isinstance(spacing, int | float) or not spacing > dia + 2 * p["thickness_mm"]):
        raise InvalidInput("vent_spacing_mm must exceed the vent diameter plus twice the wall thickness.")


def fit_limb_frame(limb: Mesh, *, volar_direction: Any = None, distal_direction: Any = None) -> LimbFrame:
    """The limb's axis and volar direction from its surface (see the module docstring)."""
    tri = limb.triangles()
    w = face_areas(limb)
    c = tri.mean(axis=1)
    if w.sum() <= 0:
        raise InvalidInput("The limb scan has no area.")
    centre = (w[:, None] * c).sum(0) / w.sum()
    cov = np.cov((c - centre).T, aweights=w)
    evals, evecs = np.linalg.eigh(cov)
    if evals[2] < 2.0 * evals[1]:
        raise Unprocessable("The limb scan is not elongated enough to find a limb axis.")
    axis = evecs[:, 2]
    # refine: a line through the area-weighted centroids of cross-sections of the central 80%
    s = (c - centre) @ axis
    edges = np.linspace(np.quantile(s, 0.1), np.quantile(s, 0.9), 17)
    bins = np.digitize(s, edges)
    cents = [
        (w[bins == b, None] * c[bins == b]).sum(0) / w[bins == b].sum()
        for b in range(1, len(edges))
        if w[bins == b].sum() > 0
    ]
    if len(cents) >= 4:
        pts = np.array(cents)
        line_centre = pts.mean(0)
        new_axis = np.linalg.svd(pts - line_centre)[2][0]
        if abs(new_axis @ axis) > np.cos(np.radians(20)):
            axis, centre = new_axis * np.sign(new_axis @ axis), line_centre
    s = (c - centre) @ axis
    sv = (limb.vertices - centre) @ axis
    s_lo, s_hi = float(sv.min()), float(sv.max())
    flat = (c - centre) - np.outer(s, axis)
    if distal_direction is not None:
        if _unit(distal_direction, "distal_direction") @ axis < 0:
            axis, s, s_lo, s_hi = -axis, -s, -s_hi, -s_lo
    else:  # the proximal cut is the larger cross-section (second moments of 5-20% from each end)
        span = s_hi - s_lo

        def size(sel: NDArray[np.bool_]) -> float:
            top = np.linalg.eigvalsh(np.cov(flat[sel].T, aweights=w[sel]))[1:]  # the in-plane pair
            return float(np.sqrt(max(top[0] * top[1], 0.0)))

        lo_band = (s > s_lo + 0.05 * span) & (s < s_lo + 0.2 * span)
        hi_band = (s < s_hi - 0.05 * span) & (s > s_hi - 0.2 * span)
        if lo_band.sum() > 3 and hi_band.sum() > 3 and size(hi_band) > size(lo_band):
            axis, s, s_lo, s_hi = -axis, -s, -s_hi, -s_lo
    if volar_direction is not None:
        v = _unit(volar_direction, "volar_direction")
        v = v - (v @ axis) * axis
        if np.linalg.norm(v) < 0.2:
            raise InvalidInput("volar_direction must not run along the limb axis.")
    else:
        evec = np.linalg.eigh(np.cov(flat.T, aweights=w))[1]
        v = evec[:, 1] if abs(evec[:, 0] @ axis) > 0.9 else evec[:, 0]  # the thin in-plane direction
        v = v - (v @ axis) * axis
        ref = -np.eye(3)[2] if abs(v[2]) > 1e-6 else np.eye(3)[0]
        v = v * (1.0 if v @ ref >= 0 else -1.0)
    v = v / np.linalg.norm(v)
    return LimbFrame(centre, axis, v, np.cross(v, axis), s_lo, s_hi)


def _smin(a: NDArray[np.floating], b: NDArray[np.floating], k: float) -> NDArray[np.floating]:
    """Polynomial smooth minimum (intersection of 'positive inside' fields) rounding over ``k`` mm."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _exact_distance(local: Mesh, points: Vec) -> Vec:
    """Signed distance (outside positive) from points to the mesh, by VTK."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonCore import vtkDoubleArray
    from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

    from medweave.printing.vtkbridge import to_polydata

    fn = vtkImplicitPolyDataDistance()
    fn.SetInput(to_polydata(local))
    out = vtkDoubleArray()
    fn.FunctionValue(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True), out
    )
    return numpy_support.vtk_to_numpy(out).astype(np.float64)


def _mid_surface(d: Vec, lo: Vec, pitch: float, z: float, level: float, thetas: Vec) -> Vec:
    """Radius where d first reaches ``level`` going out from the axis, per angle, at height z."""
    hi = lo + (np.array(d.shape[::-1]) - 1) * pitch
    rho_max = float(np.hypot(max(-lo[0], hi[0]), max(-lo[1], hi[1])))
    rho = np.arange(0.0, rho_max, pitch / 4)
    x = np.sin(thetas)[:, None] * rho
    y = np.cos(thetas)[:, None] * rho
    idx = np.stack([np.full_like(x, (z - lo[2]) / pitch), (y - lo[1]) / pitch, (x - lo[0]) / pitch])
    vals = ndimage.map_coordinates(d, idx.reshape(3, -1), order=1, mode="nearest").reshape(x.shape)
    above = vals >= level
    first = np.argmax(above, axis=1)
    ok = above.any(axis=1) & (first > 0)
    i0 = np.clip(first - 1, 0, None)
    r0, r1 = rho[i0], rho[first]
    v0 = vals[np.arange(len(thetas)), i0]
    v1 = vals[np.arange(len(thetas)), first]
    frac = np.clip((level - v0) / np.where(v1 > v0, v1 - v0, 1.0), 0, 1)
    out = np.where(ok, r0 + frac * (r1 - r0), np.nan)
    return np.asarray(out, dtype=np.float64)


def _plan_vents(
    d: Vec, lo: Vec, pitch: float, p: dict[str, Any], z0: float, z1: float, alpha: float
) -> list[tuple[Vec, Vec]]:
    """Vent centres on the mid-surface and their normals, in frame coordinates."""
    r = p["vent_diameter_mm"] / 2
    spacing, keep = p["vent_spacing_mm"], r + p["edge_margin_mm"]
    mid = p["clearance_mm"] + p["thickness_mm"] / 2
    if r == 0 or z1 - z0 < 2 * keep:
        return []
    n_rows = int(np.floor((z1 - z0 - 2 * keep) / spacing)) + 1
    zs = (z0 + z1) / 2 + (np.arange(n_rows) - (n_rows - 1) / 2) * spacing
    thetas = np.linspace(-alpha, alpha, 721)
    vents = []
    for z in zs:
        rho = _mid_surface(d, lo, pitch, float(z), mid, thetas)
        good = np.isfinite(rho)
        if good.sum() < 10:
            continue
        rho = np.interp(thetas, thetas[good], rho[good])
        xy = np.stack([rho * np.sin(thetas), rho * np.cos(thetas)], axis=1)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
        avail = arc[-1] - 2 * keep
        if avail < 0:
            continue
        n = int(np.floor(avail / spacing)) + 1
        at = arc[-1] / 2 + (np.arange(n) - (n - 1) / 2) * spacing
        for a in at:
            th = float(np.interp(a, arc, thetas))
            rr = float(np.interp(th, thetas, rho))
            centre = np.array([rr * np.sin(th), rr * np.cos(th), z])
            probe = centre + np.concatenate([np.eye(3), -np.eye(3)]) * pitch
            vals = ndimage.map_coordinates(d, ((probe - lo) / pitch)[:, ::-1].T, order=1, mode="nearest")
            g = (vals[:3] - vals[3:]) / (2 * pitch)
            radial = np.array([np.sin(th), np.cos(th), 0.0])
            normal = g / np.linalg.norm(g) if np.linalg.norm(g) > 0.3 and g @ radial > 0.3 else radial
            vents.append((centre, normal))
    return vents


def design_splint(
    limb: Mesh,
    *,
    thickness_mm: float = 3.0,
    clearance_mm: float = 1.0,
    length_mm: float | None = None,
    distal_offset_mm: float = 15.0,
    coverage: str = "volar",
    vent_diameter_mm: float = 6.0,
    vent_spacing_mm: float = 15.0,
    opening_deg: float = 30.0,
    edge_margin_mm: float = 5.0,
    volar_direction: Any = None,
    distal_direction: Any = None,
    pitch_mm: float = 0.75,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> SplintDesign:
    """A volar or circumferential forearm splint around ``limb`` (a closed mesh in mm).

    ``length_mm`` None runs from the distal edge (``distal_offset_mm`` short of the scan's distal
    end) to 10 mm short of its proximal cut. ``opening_deg`` is the slot of a circumferential
    splint, centred on the dorsal side. Raises InvalidInput for bad parameters, Unprocessable for
    an open mesh or a window the scan cannot hold, PayloadTooLarge for a grid over 40 M voxels.
    """
    params: dict[str, Any] = {
        "thickness_mm": thickness_mm,
        "clearance_mm": clearance_mm,
        "length_mm": length_mm,
        "distal_offset_mm": distal_offset_mm,
        "coverage": coverage,
        "vent_diameter_mm": vent_diameter_mm,
        "vent_spacing_mm": vent_spacing_mm,
        "opening_deg": opening_deg,
        "edge_margin_mm": edge_margin_mm,
        "pitch_mm": pitch_mm,
    }
    _validate(params)
    step = 0

    def advance() -> None:
        nonlocal step
        if cancelled is not None and cancelled():
            raise Cancelled("the splint design was cancelled")
        step += 1
        if progress is not None:
            progress(step, STEPS)

    if limb.n_triangles == 0 or not np.all(np.isfinite(limb.vertices)):
        raise InvalidInput("The limb scan is empty or has non-finite coordinates.")
    topo = topology(limb)
    if not topo.watertight:
        raise Unprocessable(
            f"The limb scan is not a closed surface ({topo.boundary_edges} open and "
            f"{topo.nonmanifold_edges} non-manifold edges); close it before designing a splint."
        )
    frame = fit_limb_frame(limb, volar_direction=volar_direction, distal_direction=distal_direction)
    params["volar_direction"] = frame.volar.tolist()
    params["distal_direction"] = frame.axis.tolist()
    span = frame.s_max - frame.s_min
    if not 80.0 <= span <= 1000.0:
        raise InvalidInput(f"The limb scan is {span:.0f} units long; a forearm scan in mm is 80-1000 mm.")
    z1 = frame.s_max - distal_offset_mm
    z0 = z1 - length_mm if length_mm is not None else frame.s_min + PROXIMAL_MARGIN_MM
    if z0 < frame.s_min + PROXIMAL_MARGIN_MM - 1e-6 or z1 - z0 < 30.0:
        raise Unprocessable(
            f"The scan is {span:.0f} mm long: too short for this length window and distal offset."
        )
    advance()

    t, c, pitch = float(thickness_mm), float(clearance_mm), float(pitch_mm)
    rot = frame.rotation
    local = Mesh((limb.vertices - frame.origin) @ rot, limb.faces)
    pad = c + t + 4 * pitch
    near = (local.vertices[:, 2] > z0 - pad) & (local.vertices[:, 2] < z1 + pad)
    xy = local.vertices[near, :2] if near.any() else local.vertices[:, :2]
    lo = np.array([*(xy.min(0) - pad), z0 - pad])
    hi = np.array([*(xy.max(0) + pad), z1 + pad])
    nx, ny, nz = (int(v) for v in np.ceil((hi - lo) / pitch) + 1)
    dims = (nx, ny, nz)
    if int(np.prod(dims)) > MAX_VOXELS:
        raise PayloadTooLarge(f"The splint grid would hold {np.prod(dims):,} voxels; use a coarser pitch_mm.")
    inside = voxelize_on(local, origin=lo, spacing=(pitch, pitch, pitch), dims=dims).data.astype(bool)
    advance()

    d = ndimage.distance_transform_edt(~inside, sampling=pitch) - pitch / 2
    d_in = ndimage.distance_transform_edt(inside, sampling=pitch) - pitch / 2
    d[inside] = -d_in[inside]
    del d_in
    advance()

    kg, jg, ig = np.ogrid[: dims[2], : dims[1], : dims[0]]
    x = lo[0] + ig * pitch
    y = lo[1] + jg * pitch
    z = lo[2] + kg * pitch
    theta = np.arctan2(x, y)  # 0 on the volar side, +pi/2 toward `side`
    alpha = np.pi / 2 if coverage == "volar" else np.pi - np.radians(opening_deg) / 2
    sector = np.sqrt(x * x + y * y) * np.sin(np.clip(alpha - np.abs(theta), -np.pi / 2, np.pi / 2))
    axial = np.minimum(z - z0, z1 - z)
    k_round = min(1.0, t / 3)
    # exact distances where the shell can be: near the band, the window and the sector
    band = (d > c - 2 * pitch) & (d < c + t + 2 * pitch) & (sector > -3 * pitch) & (axial > -3 * pitch)
    kk, jj, ii = np.nonzero(band)
    del band
    d[kk, jj, ii] = _exact_distance(local, lo + np.stack([ii, jj, kk], axis=1) * pitch)
    advance()

    field = np.minimum(d - c, c + t - d)
    field = _smin(field, axial, k_round)
    field = _smin(field, sector, k_round)
    del sector, axial
    advance()

    vents = _plan_vents(d, lo, pitch, params, z0, z1, alpha)
    r_vent = vent_diameter_mm / 2
    half = c + t / 2 + 2 * pitch
    reach = int(np.ceil((max(r_vent, half) + k_round) / pitch)) + 2
    for centre, normal in vents:
        ci = np.round((centre - lo) / pitch).astype(int)
        sl = tuple(slice(max(ci[a] - reach, 0), ci[a] + reach + 1) for a in (2, 1, 0))
        zz, yy, xx = np.meshgrid(
            *[lo[a] + np.arange(dims[a])[sl[2 - a]] * pitch for a in (2, 1, 0)], indexing="ij"
        )
        rel = np.stack([xx - centre[0], yy - centre[1], zz - centre[2]], axis=-1)
        along = rel @ normal
        radial = np.linalg.norm(rel - along[..., None] * normal, axis=-1)
        outside_hole = np.maximum(radial - r_vent, np.abs(along) - half)
        field[sl] = _smin(field[sl], outside_hole, k_round)
    advance()

    solid = field > 0
    labels, n = ndimage.label(solid)
    if n == 0:
        raise Unprocessable("The splint came out empty; check the length window and coverage.")
    if n > 1:
        sizes = ndimage.sum_labels(solid, labels, index=np.arange(1, n + 1))
        stray = solid & (labels != int(np.argmax(sizes)) + 1)
        field[stray] = -pitch
        solid &= ~stray
    affine = np.eye(4)
    affine[:3, :3] = rot * pitch
    affine[:3, 3] = frame.origin + rot @ lo
    inner = solid & (d < c + pitch)
    stats = {
        "holes": len(vents),
        "hole_centres_mm": [(frame.origin + rot @ cen).tolist() for cen, _ in vents],
        "clearance_min_mm": float(d[solid].min()),
        "clearance_inner_median_mm": float(np.median(d[inner])) if inner.any() else float("nan"),
        "volume_mm3": float(solid.sum() * pitch**3),
        "voxels": int(solid.sum()),
        "grid": list(dims),
        "axis": frame.axis.tolist(),
        "axis_point": frame.origin.tolist(),
        "volar": frame.volar.tolist(),
        "window_mm": [float(z0), float(z1)],
        "proximal_centre": (frame.origin + z0 * frame.axis).tolist(),
        "distal_centre": (frame.origin + z1 * frame.axis).tolist(),
        "coverage_deg": float(np.degrees(2 * alpha)),
    }
    advance()
    return SplintDesign(
        field=Volume(field.astype(np.float32), affine),
        level=0.0,
        mask=Volume(solid.astype(np.uint8), affine),
        params=params,
        stats=stats,
    )
