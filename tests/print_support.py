"""Shared by the print lab's integration, web and browser tests: a skull phantom as a DICOM series
(in a folder or a zip), and a lab technician in the test clinic."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dicom_support import write_series
from medweave.printing.volume import Volume
from phantoms import Phantom, skull_phantom


def series_args(volume: Volume) -> dict[str, Any]:
    """write_series's spacing and origin for an axis-aligned volume."""
    affine = volume.affine
    assert np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))), "the phantom grid is axis-aligned"
    spacing = tuple(float(v) for v in np.diag(affine[:3, :3]))
    return {"spacing": spacing, "origin": tuple(float(v) for v in affine[:3, 3])}


def write_phantom(phantom: Phantom, folder: Path, **options: Any) -> list[Path]:
    args = series_args(phantom.volume)
    return write_series(
        np.asarray(phantom.volume.data), args["spacing"], folder, origin=args["origin"], **options
    )


def zipped(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    return buf.getvalue()


def small_skull(**options: Any) -> Phantom:
    """A quick phantom for workflow tests (2 mm voxels); the accuracy tests use finer ones."""
    return skull_phantom(size=options.pop("size", 160), spacing_mm=options.pop("spacing_mm", 2.0), **options)
