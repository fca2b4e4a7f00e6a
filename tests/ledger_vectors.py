"""The shared interoperability vectors (``../shared/ledger/interop-vectors.json``), read in place.

The file is never copied into this repository: tests read it where the workplace keeps it, or
where ``MEDWEAVE_LEDGER_VECTORS`` points. A missing file fails the tests; it never skips them.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [
    *([Path(os.environ["MEDWEAVE_LEDGER_VECTORS"])] if os.environ.get("MEDWEAVE_LEDGER_VECTORS") else []),
    ROOT.parent / "shared" / "ledger" / "interop-vectors.json",
    Path("/work/shared/ledger/interop-vectors.json"),
]


@cache
def vectors() -> dict[str, Any]:
    for path in _CANDIDATES:
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return data
    raise FileNotFoundError(
        "interop-vectors.json not found; set MEDWEAVE_LEDGER_VECTORS (looked in "
        + ", ".join(str(p) for p in _CANDIDATES)
        + ")"
    )


def group(name: str) -> dict[str, Any]:
    """One group of the vectors file, by name."""
    for g in vectors()["groups"]:
        if g["name"] == name:
            found: dict[str, Any] = g
            return found
    raise KeyError(name)


def cases(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = group(name)["cases"]
    return found
