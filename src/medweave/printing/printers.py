"""Printers and materials: build volumes, minimum walls and densities, from a JSON catalogue.

The packaged catalogue (``data/printers.json``) lists a few real machines with the build volume
from each vendor's specification and a minimum wall from the vendor's design guide or material
data sheet, and four materials with densities from their data sheets; every entry carries its
source in a ``source`` field. A site may supply its own file (``MEDWEAVE_PRINTERS_FILE``) in the
same shape; a bad file is :class:`~medweave.errors.InvalidInput`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medweave.errors import InvalidInput

DEFAULT_FILE = Path(__file__).with_name("data") / "printers.json"


@dataclass(frozen=True)
class Material:
    id: str
    name: str
    density_g_cm3: float
    source: str


@dataclass(frozen=True)
class Printer:
    id: str
    name: str
    vendor: str
    technology: str
    build_volume_mm: tuple[float, float, float]
    min_wall_mm: float
    materials: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Catalog:
    printers: dict[str, Printer]
    materials: dict[str, Material]

    def printer(self, printer_id: str) -> Printer:
        try:
            return self.printers[printer_id]
        except KeyError:
            raise InvalidInput(
                f"unknown printer {printer_id!r}; known: {', '.join(sorted(self.printers))}."
            ) from None

    def material(self, material_id: str) -> Material:
        try:
            return self.materials[material_id]
        except KeyError:
            known = ", ".join(sorted(self.materials))
            raise InvalidInput(f"unknown material {material_id!r}; known: {known}.") from None


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"the printers file needs a text {key!r} for {where}.")
    return value


def _positive(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInput(f"the printers file needs a positive number for {what}.")
    return float(value)


def parse_catalog(doc: Any) -> Catalog:
    """Validate a decoded printers document."""
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("printers"), list)
        or not isinstance(doc.get("materials"), list)
    ):
        raise InvalidInput("the printers file must be an object with 'printers' and 'materials' lists.")
    materials: dict[str, Material] = {}
    for i, entry in enumerate(doc["materials"]):
        if not isinstance(entry, dict):
            raise InvalidInput(f"material {i} in the printers file is not an object.")
        mid = _text(entry, "id", f"material {i}")
        if mid in materials:
            raise InvalidInput(f"material {mid!r} is listed twice in the printers file.")
        materials[mid] = Material(
            mid,
            _text(entry, "name", mid),
            _positive(entry.get("density_g_cm3"), f"the density of {mid}"),
            _text(entry, "source", mid),
        )
    printers: dict[str, Printer] = {}
    for i, entry in enumerate(doc["printers"]):
        if not isinstance(entry, dict):
            raise InvalidInput(f"printer {i} in the printers file is not an object.")
        pid = _text(entry, "id", f"printer {i}")
        if pid in printers:
            raise InvalidInput(f"printer {pid!r} is listed twice in the printers file.")
        vol = entry.get("build_volume_mm")
        if not isinstance(vol, list) or len(vol) != 3:
            raise InvalidInput(f"printer {pid!r} needs a build_volume_mm of three numbers.")
        sizes = tuple(_positive(v, f"the build volume of {pid}") for v in vol)
        mats = entry.get("materials", [])
        if not isinstance(mats, list) or any(m not in materials for m in mats):
            raise InvalidInput(f"printer {pid!r} lists a material the file does not define.")
        printers[pid] = Printer(
            pid,
            _text(entry, "name", pid),
            _text(entry, "vendor", pid),
            _text(entry, "technology", pid),
            (sizes[0], sizes[1], sizes[2]),
            _positive(entry.get("min_wall_mm"), f"the minimum wall of {pid}"),
            tuple(mats),
            _text(entry, "source", pid),
        )
    if not printers:
        raise InvalidInput("the printers file lists no printers.")
    return Catalog(printers, materials)


def load_printers(path: Path | None = None) -> Catalog:
    """The catalogue in ``path`` (a site's file), or the packaged default when None."""
    source = path if path is not None else DEFAULT_FILE
    try:
        raw = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the printers file {source.name} cannot be read.") from exc
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the printers file {source.name} is not valid JSON (line {exc.lineno}).") from exc
    return parse_catalog(doc)
