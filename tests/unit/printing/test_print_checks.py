"""Print-readiness report: passes a good part, fails broken ones with reasons, never crashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medweave.errors import InvalidInput
from medweave.printing.checks import check, nonmanifold_vertices
from medweave.printing.mesh import Mesh
from medweave.printing.printers import load_printers, parse_catalog
from meshes_support import (
    box,
    hollow_sphere,
    l_bracket,
    nonmanifold_mesh,
    open_sphere,
    overlapping_spheres,
    sphere,
)

CATALOG = load_printers()
PRUSA = CATALOG.printer("prusa-mk4")


def test_good_part_passes_everything() -> None:
    report = check(l_bracket(), printer=PRUSA, material="PLA")
    assert report.passed, report.to_text()
    names = [c.name for c in report.checks]
    assert names == [
        "watertight",
        "manifold",
        "self_intersections",
        "orientation",
        "min_wall",
        "build_volume",
        "volume_mass",
        "suggested_orientation",
    ]
    mass = report.get("volume_mass").value
    assert mass["volume_mm3"] == pytest.approx(6400.0)
    assert mass["mass_g"] == {
        "PLA": pytest.approx(7.94),
        "PETG": pytest.approx(8.13),
        "PEEK": pytest.approx(8.32),
        "Ti-6Al-4V": pytest.approx(28.35),
    }
    assert report.get("suggested_orientation").value["overhang_after_mm2"] == 0.0
    doc = report.to_json()
    assert json.loads(json.dumps(doc)) == doc and doc["passed"] is True
    assert report.to_text().startswith("Print check for prusa-mk4: PASS")


def test_thin_shell_fails_min_wall_on_the_fdm_printer_only() -> None:
    shell = hollow_sphere(15.0, 0.6, 4)
    fdm = check(shell, printer=PRUSA)
    assert not fdm.passed and not fdm.get("min_wall").passed
    assert "too thin" in fdm.get("min_wall").reason
    assert fdm.get("min_wall").value["p1_mm"] < 0.8
    metal = check(shell, printer=CATALOG.printer("eos-m290"))
    assert metal.get("min_wall").passed, metal.to_text()


@pytest.mark.parametrize(
    ("mesh", "failing"),
    [
        (open_sphere(3), {"watertight", "manifold", "min_wall", "volume_mass"}),
        (nonmanifold_mesh(), {"watertight", "manifold", "orientation", "min_wall", "volume_mass"}),
        (overlapping_spheres(), {"self_intersections"}),
    ],
)
def test_broken_meshes_fail_the_right_checks_with_reasons(mesh: Mesh, failing: set[str]) -> None:
    report = check(mesh, printer=PRUSA)
    failed = {c.name for c in report.checks if not c.passed}
    assert failing <= failed
    assert {"watertight", "self_intersections"} - failing <= {c.name for c in report.checks if c.passed}
    for c in report.checks:
        assert c.reason and (c.passed or "could not be computed" not in c.reason)


def test_open_edges_are_counted_in_the_reason() -> None:
    report = check(open_sphere(3), printer=PRUSA)
    assert report.get("watertight").reason == "the mesh has 9 open edges (holes)."


def test_inside_out_is_reported() -> None:
    s = sphere(10, 3)
    report = check(Mesh(s.vertices, s.faces[:, ::-1].copy()), printer=PRUSA)
    assert "inside out" in report.get("orientation").reason


def test_build_volume_fit_and_misfit() -> None:
    form = CATALOG.printer("formlabs-form-3b")  # 145 x 145 x 185
    tall = box((0, 0, 0), (20, 180, 20))  # fits only standing up
    fit = check(tall, printer=form).get("build_volume")
    assert fit.passed, fit.reason
    huge = check(box((0, 0, 0), (200, 200, 200)), printer=form).get("build_volume")
    assert not huge.passed and "does not fit" in huge.reason


def test_empty_and_garbage_never_crash() -> None:
    empty = check(Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)), printer=PRUSA)
    assert not empty.passed
    nan = sphere(10, 2)
    report = check(Mesh(nan.vertices * np.nan, nan.faces), printer=PRUSA)
    assert not report.passed


def test_pinched_vertex_is_found() -> None:
    a, b = sphere(10, 1), sphere(10, 1, centre=(20.0, 0, 0))
    v = np.concatenate([a.vertices, b.vertices])
    f = np.concatenate([a.faces, b.faces + len(a.vertices)])
    f[f == len(a.vertices) + int(np.argmin(b.vertices[:, 0]))] = int(np.argmax(a.vertices[:, 0]))
    assert nonmanifold_vertices(Mesh(v, f)) == 1
    assert nonmanifold_vertices(a) == 0
    assert not check(Mesh(v, f), printer=PRUSA).get("manifold").passed


def test_unknown_material_is_invalid() -> None:
    with pytest.raises(InvalidInput):
        check(sphere(), printer=PRUSA, material="unobtainium")


def test_printer_catalogue(tmp_path: Path) -> None:
    assert CATALOG.printer("eos-m290").build_volume_mm == (250.0, 250.0, 325.0)
    assert CATALOG.material("Ti-6Al-4V").density_g_cm3 == 4.43
    assert all(p.source and p.min_wall_mm > 0 for p in CATALOG.printers.values())
    assert all(m.source for m in CATALOG.materials.values())
    with pytest.raises(InvalidInput):
        CATALOG.printer("nope")
    bad = tmp_path / "printers.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        load_printers(bad)
    doc = json.loads((Path(__file__).parents[3] / "src/medweave/printing/data/printers.json").read_text())
    doc["printers"][0]["build_volume_mm"] = [250, -1, 220]
    with pytest.raises(InvalidInput, match="positive"):
        parse_catalog(doc)
    doc["printers"][0]["build_volume_mm"] = [10, 10, 10]
    bad.write_text(json.dumps(doc))
    assert load_printers(bad).printer("prusa-mk4").build_volume_mm == (10.0, 10.0, 10.0)
    with pytest.raises(InvalidInput):
        load_printers(tmp_path / "missing.json")
