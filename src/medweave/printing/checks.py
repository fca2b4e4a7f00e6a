"""Print-readiness checks of a mesh for one printer: a report that never crashes (no I/O).

Checks, each with a reason a person can act on:

* watertight - no open edges (each edge used by exactly two faces);
* manifold - no edge with three or more faces and no vertex whose faces form more than one fan
  (the 2-manifold conditions of the 3MF core specification, 4.1.1, and of slicers);
* self-intersections - no two non-adjacent triangles cross (:mod:`medweave.printing.intersect`);
* orientation - consistent winding and a positive enclosed volume (normals out);
* minimum wall - the 1st percentile (by area) of the wall-thickness map
  (:mod:`medweave.printing.thickness`) is at least the printer's ``min_wall_mm`` from its vendor's
  design guide; the 1st percentile, not the minimum, so a single noisy sample does not fail a part;
* build volume - the part fits the build volume in the suggested orientation (turned about the
  vertical in 90 degree steps), or else in one of the 24 axis-aligned rotations of the part as
  given; the reason says which;
* volume and mass - enclosed volume in mm^3 and mass for every catalogued material
  (density in g/cm^3 x volume / 1000);
* suggested orientation - least support area (:mod:`medweave.printing.orientation`).

A broken mesh fails the relevant checks with reasons; checks that need a closed solid say they
were not measured. Any unexpected error inside one check fails that check, never the report.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from medweave.printing.intersect import self_intersections
from medweave.printing.mesh import Mesh, Topology, signed_volume, topology
from medweave.printing.orientation import suggest_orientation
from medweave.printing.printers import Catalog, Printer, load_printers
from medweave.printing.repair import edge_keys
from medweave.printing.thickness import wall_thickness

FIT_MARGIN_MM = 0.0


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: Any
    limit: Any
    reason: str


@dataclass
class CheckReport:
    printer: str
    material: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def get(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_json(self) -> dict[str, Any]:
        return json.loads(
            json.dumps(
                {
                    "printer": self.printer,
                    "material": self.material,
                    "passed": self.passed,
                    "checks": [asdict(c) for c in self.checks],
                },
                default=_plain,
            )
        )

    def to_text(self) -> str:
        lines = [f"Print check for {self.printer}: {'PASS' if self.passed else 'FAIL'}"]
        for c in self.checks:
            lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.reason}")
        return "\n".join(lines)


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def nonmanifold_vertices(mesh: Mesh) -> int:
    """Vertices whose incident faces form more than one edge-connected fan (a 'bow tie')."""
    f = mesh.faces
    m = f.shape[0]
    if m == 0:
        return 0
    corner_vertex = f.ravel()  # corner c = 3 * face + k
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    face = np.tile(np.arange(m), 3)
    k0 = np.repeat([0, 1, 2], m)
    k1 = (k0 + 1) % 3
    _, inv = np.unique(edge_keys(directed), return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")
    same = inv[order][1:] == inv[order][:-1]
    a, b = order[:-1][same], order[1:][same]  # half-edges on the same edge, pairwise
    rows, cols = [], []
    for ha, hb in ((a, b),):
        for ka in (k0, k1):
            ca = 3 * face[ha] + ka[ha]
            for kb in (k0, k1):
                cb = 3 * face[hb] + kb[hb]
                joined = corner_vertex[ca] == corner_vertex[cb]
                rows.append(ca[joined])
                cols.append(cb[joined])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(r.shape[0]), (r, c)), shape=(3 * m, 3 * m))
    _, label = connected_components(graph, directed=False)
    fans = np.unique(corner_vertex.astype(np.int64) * (3 * m) + label)
    per_vertex = np.bincount(fans // (3 * m))
    return int((per_vertex > 1).sum())


def _fits(extent: NDArray[np.float64], build: tuple[float, float, float]) -> bool:
    return bool(np.all(extent <= np.asarray(build) - FIT_MARGIN_MM))


def _axis_rotations() -> list[NDArray[np.float64]]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            r = np.zeros((3, 3))
            r[range(3), perm] = signs
            if np.linalg.det(r) > 0:
                out.append(r)
    return out


def _guard(name: str, limit: Any, run: Callable[[], Check]) -> Check:
    try:
        return run()
    except Exception as exc:  # one check's failure must not take the report down
        return Check(name, False, None, limit, f"could not be computed ({type(exc).__name__}).")


def check(
    mesh: Mesh, *, printer: Printer, material: str | None = None, catalog: Catalog | None = None
) -> CheckReport:
    """Run every check of the mesh against ``printer``; ``material`` is noted and must be known."""
    cat = catalog if catalog is not None else load_printers()
    if material is not None:
        cat.material(material)  # InvalidInput for an unknown material
    report = CheckReport(printer.id, material)
    add = report.checks.append
    empty = mesh.n_triangles == 0 or mesh.vertices.shape[0] == 0
    if empty:
        add(Check("watertight", False, 0, 0, "the mesh has no triangles."))
        return report
    topo: Topology = topology(mesh)

    add(
        Check(
            "watertight",
            topo.boundary_edges == 0,
            topo.boundary_edges,
            0,
            "closed: no open edges."
            if topo.boundary_edges == 0
            else f"the mesh has {topo.boundary_edges} open edges (holes).",
        )
    )

    def manifold() -> Check:
        bad_v = nonmanifold_vertices(mesh)
        ok = topo.nonmanifold_edges == 0 and bad_v == 0 and topo.degenerate_faces == 0
        why = (
            "every edge has two faces and every vertex one fan."
            if ok
            else (
                f"{topo.nonmanifold_edges} edges with three or more faces, {bad_v} pinched vertices, "
                f"{topo.degenerate_faces} degenerate faces."
            )
        )
        return Check(
            "manifold",
            ok,
            {
                "nonmanifold_edges": topo.nonmanifold_edges,
                "nonmanifold_vertices": bad_v,
                "degenerate_faces": topo.degenerate_faces,
            },
            0,
            why,
        )

    add(_guard("manifold", 0, manifold))

    def crossing() -> Check:
        n = self_intersections(mesh)
        return Check(
            "self_intersections",
            n == 0,
            n,
            0,
            "no triangles cross." if n == 0 else f"{n} pairs of triangles cross each other.",
        )

    add(_guard("self_intersections", 0, crossing))

    volume = signed_volume(mesh)
    oriented = topo.consistent and volume > 0
    add(
        Check(
            "orientation",
            oriented,
            {"misoriented_edges": topo.misoriented_edges, "volume_mm3": volume},
            0,
            "normals point out."
            if oriented
            else (
                f"{topo.misoriented_edges} edges have faces wound inconsistently."
                if not topo.consistent
                else "the mesh is inside out (negative volume)."
            ),
        )
    )

    closed = topo.ok and volume > 0

    def wall() -> Check:
        if not closed:
            return Check(
                "min_wall",
                False,
                None,
                printer.min_wall_mm,
                "not measured: the wall thickness needs a closed, oriented mesh.",
            )
        tm = wall_thickness(mesh, resolve_mm=printer.min_wall_mm)
        ok = tm.p1 >= printer.min_wall_mm
        return Check(
            "min_wall",
            ok,
            {
                "p1_mm": round(tm.p1, 3),
                "min_mm": round(tm.minimum, 3),
                "median_mm": round(tm.median, 3),
                "pitch_mm": round(tm.pitch, 3),
            },
            printer.min_wall_mm,
            f"thinnest walls {tm.p1:.2f} mm (1st percentile) against {printer.min_wall_mm} mm "
            f"for {printer.name}" + ("." if ok else ": too thin."),
        )

    add(_guard("min_wall", printer.min_wall_mm, wall))

    orient_box: dict[str, Any] = {}

    def orientation() -> Check:
        o = suggest_orientation(mesh)
        orient_box["o"] = o
        return Check(
            "suggested_orientation",
            True,
            {
                "rotation": np.round(o.rotation, 6).tolist(),
                "down": np.round(o.down, 6).tolist(),
                "overhang_before_mm2": round(o.overhang_before_mm2, 1),
                "overhang_after_mm2": round(o.overhang_after_mm2, 1),
                "height_mm": round(o.height_mm, 2),
            },
            None,
            f"overhang {o.overhang_before_mm2:.0f} mm2 as given, {o.overhang_after_mm2:.0f} mm2 "
            f"turned; build height {o.height_mm:.1f} mm.",
        )

    orient_check = _guard("suggested_orientation", None, orientation)

    def fit() -> Check:
        build = printer.build_volume_mm
        o = orient_box.get("o")
        if o is not None:
            turned = o.apply(mesh).vertices
            ext = np.ptp(turned, axis=0)
            for e in (ext, ext[[1, 0, 2]]):
                if _fits(e, build):
                    return Check(
                        "build_volume",
                        True,
                        np.round(e, 2).tolist(),
                        list(build),
                        f"fits in the suggested orientation ({e[0]:.1f} x {e[1]:.1f} x {e[2]:.1f} mm).",
                    )
        for r in _axis_rotations():
            e = np.ptp(mesh.vertices @ r.T, axis=0)
            if _fits(e, build):
                return Check(
                    "build_volume",
                    True,
                    np.round(e, 2).tolist(),
                    list(build),
                    f"fits only turned by 90 degree steps from the part as given "
                    f"({e[0]:.1f} x {e[1]:.1f} x {e[2]:.1f} mm), not in the suggested orientation.",
                )
        e = np.ptp(mesh.vertices, axis=0)
        return Check(
            "build_volume",
            False,
            np.round(e, 2).tolist(),
            list(build),
            f"{e[0]:.1f} x {e[1]:.1f} x {e[2]:.1f} mm does not fit {build[0]:g} x {build[1]:g} x "
            f"{build[2]:g} mm in any 90 degree orientation.",
        )

    add(_guard("build_volume", list(printer.build_volume_mm), fit))

    def mass() -> Check:
        if not closed:
            return Check(
                "volume_mass", False, None, None, "not measured: volume needs a closed, oriented mesh."
            )
        grams = {mid: round(m.density_g_cm3 * volume / 1000.0, 2) for mid, m in cat.materials.items()}
        chosen = f"; {grams[material]} g of {material}" if material in grams else ""
        return Check(
            "volume_mass",
            True,
            {"volume_mm3": round(volume, 1), "mass_g": grams},
            None,
            f"{volume / 1000.0:.1f} cm3{chosen}.",
        )

    add(_guard("volume_mass", None, mass))
    add(orient_check)
    return report
