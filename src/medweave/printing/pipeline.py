"""From an image to a checked, exported part: the steps every entry point runs in the same order.

``make_model`` (an anatomical model: segment, surface, smooth, decimate), ``make_implant`` (a
cranial implant by symmetry), ``make_splint`` (a wrist splint around a limb scan) and ``export``
(STL or 3MF with its SHA-256). The CLI calls them directly; the lab's background jobs call them
with a progress reporter and a cancel check, and then record the result on the patient
(``service``). No database here; files only where ``export`` is asked to write one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medweave.errors import InvalidInput

# Raised between steps when the caller asked the work to stop (a cancelled job).
from medweave.printing.design import Cancelled as Stopped
from medweave.printing.mesh import Mesh, signed_volume, topology
from medweave.printing.volume import Volume

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]

PRESETS = ("bone", "skin", "custom")
#: Triangles a model is simplified to by default: what slicers and the browser viewer handle
#: without strain, while staying well under the surface deviation of a 0.5 mm CT voxel.
DEFAULT_TRIANGLES = 250_000


class Steps:
    """Progress over a fixed list of steps, with a cancel check between them."""

    def __init__(self, names: list[str], progress: Progress | None, cancelled: Cancelled | None):
        self.names = names
        self._progress = progress
        self._cancelled = cancelled
        self.done = 0
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def finish(self, name: str) -> None:
        at = time.perf_counter()
        self.seconds[name] = round(at - self._t, 3)
        self._t = at
        self.done += 1
        if self._progress is not None:
            self._progress(self.done, len(self.names))
        self.check()

    def check(self) -> None:
        if self._cancelled is not None and self._cancelled():
            raise Stopped()


@dataclass
class Part:
    """A finished mesh and how it was made."""

    mesh: Mesh
    kind: str  # "model", "implant" or "splint"
    params: dict[str, Any]
    seconds: dict[str, float]
    steps: list[dict[str, Any]] = field(default_factory=list)
    context: Mesh | None = None  # what the part fits on (the skull under an implant)
    mask: Volume | None = None  # the segmentation shown in the slice viewer
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        topo = topology(self.mesh)
        return {
            "kind": self.kind,
            "triangles": self.mesh.n_triangles,
            "watertight": topo.watertight,
            "volume_mm3": round(signed_volume(self.mesh), 1),
            "seconds": round(sum(self.seconds.values()), 2),
            "steps": self.steps,
            "params": self.params,
            "notes": self.notes,
        }


def _surface(mask_or_field: Volume, level: float, *, triangles: int | None, smooth: int) -> Any:
    from medweave.printing.surface import build_surface

    return build_surface(mask_or_field, level, smooth_iterations=smooth, target_triangles=triangles)


def _step_rows(result: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "triangles": s.triangles,
            "watertight": s.watertight,
            "repaired": s.repaired,
            "seconds": round(s.seconds, 3),
        }
        for s in result.steps
    ]


def make_model(
    volume: Volume,
    *,
    preset: str,
    iso: float | None = None,
    hi: float | None = None,
    seeds: list[tuple[int, int, int]] | None = None,
    triangles: int | None = DEFAULT_TRIANGLES,
    smooth: int = 20,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> Part:
    """An anatomical model: threshold by ``preset``, with ``iso`` as the lower bound instead of
    the preset's (and ``hi`` as an upper bound; ``custom`` is the window ``iso`` to ``hi``), keep
    the largest component (or the ones under ``seeds``), fill holes, then the surface steps of
    :mod:`surface`."""
    from medweave.printing.segment import segment

    if preset not in PRESETS:
        raise InvalidInput(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    steps = Steps(["segment", "surface"], progress, cancelled)
    steps.check()
    keep: Any = seeds if seeds else "largest"
    mask = segment(volume, preset, lo=iso, hi=hi, keep=keep)
    steps.finish("segment")
    result = _surface(mask, 0.5, triangles=triangles, smooth=smooth)
    steps.finish("surface")
    params = {
        "preset": preset,
        "iso": iso,
        "hi": hi,
        "seeds": seeds or [],
        "triangles": triangles,
        "smooth": smooth,
    }
    return Part(result.mesh, "model", params, steps.seconds, _step_rows(result), mask=mask)


def make_implant(
    ct: Volume,
    *,
    margin_mm: float = 2.0,
    thickness_mm: float | None = None,
    iso: float = 300.0,
    triangles: int | None = DEFAULT_TRIANGLES,
    with_skull: bool = False,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> Part:
    """A cranial implant in the CT's patient coordinates (see :mod:`design.cranial`)."""
    from medweave.printing.design.cranial import design_implant

    if margin_mm < 0 or margin_mm > 10:
        raise InvalidInput("the margin must be between 0 and 10 mm")
    if thickness_mm is not None and not 1.0 <= thickness_mm <= 10.0:
        raise InvalidInput("the plate thickness must be between 1 and 10 mm")
    names = ["design", "surface", *(["skull"] if with_skull else [])]
    steps = Steps(names, progress, cancelled)
    steps.check()
    design = design_implant(
        ct, margin_mm=margin_mm, thickness_mm=thickness_mm, iso_hu=iso, cancelled=cancelled
    )
    steps.finish("design")
    result = _surface(design.field, design.level, triangles=triangles, smooth=10)
    steps.finish("surface")
    skull = None
    if with_skull:  # what the implant fits on, for the 3D view
        from medweave.printing.segment import segment

        skull = _surface(segment(ct, "bone", lo=iso), 0.5, triangles=triangles, smooth=20).mesh
        steps.finish("skull")
    params: dict[str, Any] = {
        "margin_mm": margin_mm,
        "thickness_mm": thickness_mm,
        "iso_hu": iso,
        "triangles": triangles,
        "plane_normal": [round(float(v), 5) for v in design.plane.normal],
        "plane_offset_mm": round(float(design.plane.offset), 3),
        "plane_residual_mm": round(float(design.plane.residual_mm), 3),
        "defect_area_mm2": round(float(design.stats.defect_area_mm2), 1),
    }
    part = Part(
        result.mesh, "implant", params, steps.seconds, _step_rows(result), context=skull, mask=design.mask
    )
    part.notes = list(design.stats.notes)
    return part


def make_splint(
    limb: Mesh,
    *,
    options: dict[str, Any] | None = None,
    triangles: int | None = DEFAULT_TRIANGLES,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> Part:
    """A wrist splint around a closed limb surface scan (see :mod:`design.splint`)."""
    from medweave.printing.design.splint import design_splint

    steps = Steps(["design", "surface"], progress, cancelled)
    steps.check()
    design = design_splint(limb, **(options or {}), cancelled=cancelled)
    steps.finish("design")
    result = _surface(design.field, design.level, triangles=triangles, smooth=10)
    steps.finish("surface")
    return Part(result.mesh, "splint", dict(design.params), steps.seconds, _step_rows(result), context=limb)


@dataclass(frozen=True)
class Exported:
    path: Path
    format: str  # "stl" or "3mf"
    sha256: str
    bytes: int
    device_identifier: str
    iteration: int


def export(
    part: Part,
    out: Path,
    *,
    device_identifier: str | None = None,
    iteration: int = 1,
    metadata: dict[str, str] | None = None,
) -> Exported:
    """Write ``part`` as binary STL or 3MF (by ``out``'s suffix); 3MF carries millimetres, the
    device identifier and the design iteration (FDA, "Technical Considerations for Additive
    Manufactured Medical Devices", 2017, section V.B: traceability of each device to its design
    inputs and iteration). The device identifier is ours, never the patient's name or MRN."""
    from medweave.printing import export as exporter

    suffix = out.suffix.lower()
    if suffix not in (".stl", ".3mf"):
        raise InvalidInput("the output must be a .stl or .3mf file")
    ident = device_identifier or f"urn:uuid:{uuid.uuid4()}"
    if suffix == ".stl":
        exporter.write_stl(part.mesh, out)
    else:
        exporter.write_3mf(
            part.mesh,
            out,
            title=f"Medweave {part.kind}",
            device_identifier=ident,
            design_iteration=iteration,
            extra_metadata=dict(metadata or {}),
        )
    return Exported(out, suffix[1:], exporter.sha256_of(out), out.stat().st_size, ident, iteration)
