"""The wrist splint designer on synthetic limb scans: closed, right wall, clearance, vents, coverage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from limb_support import Limb, cylinder, forearm, read_mesh, write_obj, write_ply, write_stl
from medweave.errors import InvalidInput, Unprocessable
from medweave.printing.design import Cancelled
from medweave.printing.design.splint import SplintDesign, design_splint, fit_limb_frame
from medweave.printing.mesh import Mesh, signed_volume, topology
from medweave.printing.surface import volume_to_mesh

PITCH = 1.0
T, C = 3.0, 1.0
LENGTH, OFFSET = 150.0, 15.0


def distance_to(limb: Mesh, points: np.ndarray) -> np.ndarray:
    """Signed distance (outside positive) from points to the limb surface, by VTK, not our code."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonCore import vtkDoubleArray
    from vtkmodules.vtkFiltersCore import vtkImplicitPolyDataDistance

    from medweave.printing.vtkbridge import to_polydata

    fn = vtkImplicitPolyDataDistance()
    fn.SetInput(to_polydata(limb))
    out = vtkDoubleArray()
    fn.FunctionValue(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True), out
    )
    return numpy_support.vtk_to_numpy(out)


def euler(mesh: Mesh) -> int:
    f = mesh.faces
    edges = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0)
    return len(np.unique(f)) - len(edges) + len(f)


def solid_points(design: SplintDesign) -> np.ndarray:
    kji = np.argwhere(design.mask.data > 0)
    return design.mask.index_to_lps(kji[:, ::-1].astype(np.float64))


def angles(limb: Limb, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position along the axis, angle from volar in degrees) of points about the limb's true axis."""
    rel = points - limb.proximal
    side = np.cross(limb.volar, limb.axis)
    return rel @ limb.axis, np.degrees(np.arctan2(rel @ side, rel @ limb.volar))


@pytest.fixture(scope="module")
def limb() -> Limb:
    return forearm()


@pytest.fixture(scope="module")
def volar(limb: Limb) -> SplintDesign:
    return design_splint(
        limb.mesh,
        thickness_mm=T,
        clearance_mm=C,
        length_mm=LENGTH,
        distal_offset_mm=OFFSET,
        volar_direction=limb.volar,
        pitch_mm=PITCH,
    )


@pytest.fixture(scope="module")
def volar_mesh(volar: SplintDesign) -> Mesh:
    return volume_to_mesh(volar.field, volar.level)


def test_splint_surface_is_closed_and_outward(volar: SplintDesign, volar_mesh: Mesh) -> None:
    assert topology(volar_mesh).ok
    vol = signed_volume(volar_mesh)
    assert vol > 0
    assert vol == pytest.approx(volar.stats["volume_mm3"], rel=0.05)
    assert volar.field.data.dtype == np.float32 and volar.mask.data.dtype == np.uint8
    assert volar.params["thickness_mm"] == T and volar.params["coverage"] == "volar"


def test_wall_thickness_is_the_request_within_a_voxel(
    limb: Limb, volar: SplintDesign, volar_mesh: Mesh
) -> None:
    # medial ridge of the wall: 2 x (EDT to the nearest empty voxel centre), less half a voxel for
    # the half voxel between the last full voxel centre and the surface (either parity of voxels across)
    mask = volar.mask.data > 0
    edt = ndimage.distance_transform_edt(mask, sampling=PITCH)
    ridge = mask & (edt >= ndimage.maximum_filter(edt, size=3)) & (edt > PITCH)
    measured = float(np.median(2 * edt[ridge] - PITCH / 2))
    assert abs(measured - T) <= PITCH
    # and on the surface: outer minus inner distance to the limb
    d = distance_to(limb.mesh, volar_mesh.vertices)
    inner, outer = d[d < C + T / 2], d[d >= C + T / 2]
    assert abs(float(np.median(outer) - np.median(inner)) - T) <= PITCH


def test_inner_surface_keeps_the_clearance(limb: Limb, volar: SplintDesign, volar_mesh: Mesh) -> None:
    d = distance_to(limb.mesh, volar_mesh.vertices)
    inner = d[d < C + T / 2]
    assert abs(float(np.median(inner)) - C) <= PITCH / 2
    assert d.min() > C - PITCH / 2  # never touches, let alone enters, the limb
    # no limb vertex lies inside the splint's mask
    idx = np.round(volar.mask.lps_to_index(limb.mesh.vertices)).astype(int)
    dims = np.array(volar.mask.shape[::-1])
    ok = np.all((idx >= 0) & (idx < dims), axis=1)
    assert not volar.mask.data[idx[ok, 2], idx[ok, 1], idx[ok, 0]].any()
    assert volar.stats["clearance_min_mm"] >= C


def test_vents_are_through_holes(volar: SplintDesign, volar_mesh: Mesh) -> None:
    holes = volar.stats["holes"]
    assert holes >= 20  # 150 mm x a half-circumference at 15 mm spacing
    assert euler(volar_mesh) == 2 - 2 * holes  # each hole adds one handle: open right through
    r = volar.params["vent_diameter_mm"] / 2
    solid = solid_points(volar)
    for centre in volar.stats["hole_centres_mm"]:
        assert np.linalg.norm(solid - centre, axis=1).min() > r - PITCH


def test_volar_half_covers_half_the_circumference(limb: Limb, volar: SplintDesign) -> None:
    s, theta = angles(limb, solid_points(volar))
    assert np.abs(theta).max() <= 90 + 3
    middle = (s > 100) & (s < 120)  # away from the window's rounded ends
    covered = np.unique(np.floor(theta[middle] / 2)).size * 2 / 360
    assert covered == pytest.approx(0.5, abs=0.04)


def test_length_window_is_respected(limb: Limb, volar: SplintDesign) -> None:
    s, _ = angles(limb, solid_points(volar))
    distal = limb.length - OFFSET
    assert s.max() == pytest.approx(distal, abs=PITCH)
    assert s.min() == pytest.approx(distal - LENGTH, abs=PITCH)


def test_circumferential_splint_has_a_dorsal_slot_and_the_expected_vents() -> None:
    radius, length, opening, dia, spacing, margin = 30.0, 160.0, 40.0, 6.0, 14.0, 5.0
    limb = cylinder(radius=radius, length=length, rotation_deg=(30.0, 10.0, -20.0), shift=(5.0, -8.0, 12.0))
    design = design_splint(
        limb.mesh,
        thickness_mm=T,
        clearance_mm=C,
        length_mm=110.0,
        distal_offset_mm=20.0,
        coverage="circumferential",
        opening_deg=opening,
        vent_diameter_mm=dia,
        vent_spacing_mm=spacing,
        edge_margin_mm=margin,
        volar_direction=limb.volar,
        distal_direction=limb.axis,
        pitch_mm=PITCH,
    )
    keep = dia / 2 + margin
    rows = int((110.0 - 2 * keep) // spacing) + 1
    arc = (radius + C + T / 2) * np.radians(360 - opening)
    per_row = int((arc - 2 * keep) // spacing) + 1
    assert design.stats["holes"] == rows * per_row
    mesh = volume_to_mesh(design.field, design.level)
    assert topology(mesh).ok
    assert euler(mesh) == 2 - 2 * rows * per_row
    s, theta = angles(limb, solid_points(design))
    assert (np.abs(theta) < 180 - opening / 2 + 2).all()  # the slot is clear
    middle = (s > 60) & (s < 80)
    covered = np.unique(np.floor(theta[middle] / 2)).size * 2 / 360
    assert covered == pytest.approx((360 - opening) / 360, abs=0.04)


def test_splint_axis_follows_a_rotated_limb() -> None:
    first = forearm(rotation_deg=(0.0, 0.0, 0.0), shift=(0.0, 0.0, 0.0))
    turned = forearm(rotation_deg=(-60.0, 20.0, 110.0), shift=(40.0, -25.0, 10.0))
    axes = []
    for lb in (first, turned):
        design = design_splint(
            lb.mesh, length_mm=120.0, vent_diameter_mm=0.0, pitch_mm=1.5, volar_direction=lb.volar
        )
        pts = solid_points(design)
        principal = np.linalg.svd(pts - pts.mean(0), full_matrices=False)[2][0]
        assert abs(principal @ lb.axis) > np.cos(np.radians(3))
        assert np.asarray(design.stats["axis"]) @ lb.axis > np.cos(np.radians(1))
        height = (pts - lb.proximal) @ lb.volar
        assert height.min() > -2 * 1.5 and height.mean() > 8  # the shell sits on the volar side
        axes.append(np.asarray(design.stats["axis"]))
    rot = (
        np.column_stack([np.cross(turned.volar, turned.axis), turned.volar, turned.axis])
        @ np.column_stack([np.cross(first.volar, first.axis), first.volar, first.axis]).T
    )
    assert rot @ axes[0] @ axes[1] > np.cos(np.radians(1))


def test_frame_conventions_and_scan_files(tmp_path: Path, limb: Limb) -> None:
    frame = fit_limb_frame(limb.mesh)
    assert frame.axis @ limb.axis > 0.999  # the larger cut end is proximal
    assert abs(frame.volar @ limb.volar) > 0.99  # the thin direction of the cross-section
    assert frame.volar[2] <= 0  # signed toward the scan's -z
    for write in (write_stl, write_ply, write_obj):
        path = write(limb.mesh, tmp_path / f"limb.{write.__name__[6:]}")
        back = read_mesh(path)
        assert topology(back).watertight
        again = fit_limb_frame(back, volar_direction=limb.volar)
        assert again.axis @ limb.axis > 0.999 and again.volar @ limb.volar > 0.999


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"thickness_mm": 1.0}, "thickness_mm"),
        ({"thickness_mm": 7.0}, "thickness_mm"),
        ({"clearance_mm": -0.5}, "clearance_mm"),
        ({"clearance_mm": 6.0}, "clearance_mm"),
        ({"vent_diameter_mm": 2.0}, "vent_diameter_mm"),
        ({"vent_diameter_mm": 16.0}, "vent_diameter_mm"),
        ({"vent_diameter_mm": 8.0, "vent_spacing_mm": 14.0}, "vent_spacing_mm"),
        ({"coverage": "dorsal"}, "coverage"),
        ({"opening_deg": 5.0}, "opening_deg"),
        ({"pitch_mm": 2.0}, "pitch_mm"),
        ({"thickness_mm": 1.5, "pitch_mm": 1.0}, "pitch_mm"),
        ({"length_mm": 10.0}, "length_mm"),
        ({"thickness_mm": float("nan")}, "thickness_mm"),
        ({"volar_direction": (0.0, 0.0, 0.0)}, "volar_direction"),
    ],
)
def test_bad_parameters_are_refused(limb: Limb, kwargs: dict, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as err:
        design_splint(limb.mesh, **kwargs)
    assert not isinstance(err.value, Unprocessable)


def test_open_or_unfit_limb_scans_are_refused(limb: Limb) -> None:
    holed = Mesh(limb.mesh.vertices, limb.mesh.faces[10:])
    with pytest.raises(Unprocessable, match="not a closed surface"):
        design_splint(holed)
    with pytest.raises(Unprocessable, match="too short"):
        design_splint(limb.mesh, length_mm=300.0)
    metres = Mesh(limb.mesh.vertices / 1000.0, limb.mesh.faces)
    with pytest.raises(InvalidInput, match="mm"):
        design_splint(metres, pitch_mm=1.0)
    with pytest.raises(InvalidInput, match="along the limb axis"):
        design_splint(limb.mesh, volar_direction=limb.axis)


def test_progress_is_reported_and_cancel_stops(limb: Limb) -> None:
    seen: list[tuple[int, int]] = []
    with pytest.raises(Cancelled):
        design_splint(
            limb.mesh,
            pitch_mm=1.5,
            progress=lambda done, total: seen.append((done, total)),
            cancelled=lambda: len(seen) >= 2,
        )
    assert seen == [(1, 7), (2, 7)]
