"""Load an imaging input into a :class:`Volume`: a DICOM folder or .zip, one DICOM file, or NIfTI.

A folder is walked recursively (any names, any order; files that are not DICOM Part 10, and
DICOMDIR media directories, are skipped). A .zip is read in memory, never extracted to disk: its
names must be plain relative paths, and the sum of its members' uncompressed sizes is checked
against ``max_bytes`` before anything is decompressed (the zip-bomb guard of OWASP's "File Upload
Cheat Sheet"); each member is read with a bound, so a size field that lies cannot get past it.

Headers are read first without pixel data (pydicom ``stop_before_pixels``), the series is chosen
and checked and the output size estimated from Rows x Columns x slices x 4 bytes; only then are the
pixels of the chosen series decoded (JPEG 2000 through pylibjpeg-openjpeg). Every failure raises
InvalidInput (or PayloadTooLarge) with one sentence, and nothing is written anywhere.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from medweave.errors import InvalidInput, PayloadTooLarge
from medweave.printing import dicom
from medweave.printing.nifti import load_nifti
from medweave.printing.volume import Volume

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR, PS3.10 / PS3.4 Annex F

# Type 1 attributes of every composite instance (PS3.3 C.12.1 SOP Common, C.7.3.1 General Series).
REQUIRED = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID")

Opener = Callable[[], IO[bytes]]


@contextmanager
def _quiet() -> Iterator[None]:
    """pydicom warns about many harmless header quirks; the loader decides what is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _opener(path: Path) -> Opener:
    def open_file() -> IO[bytes]:
        return path.open("rb")

    return open_file


def _folder_entries(root: Path) -> list[tuple[str, Opener]]:
    entries: list[tuple[str, Opener]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            full = Path(dirpath) / fname
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            entries.append((rel, _opener(full)))
    return entries


def _safe_member(name: str) -> bool:
    if "\\" in name or name.startswith("/") or "\x00" in name:
        return False
    parts = PurePosixPath(name).parts
    return not any(p == ".." for p in parts) and not (parts and parts[0].endswith(":"))


def _zip_entries(data: zipfile.ZipFile, max_bytes: int) -> list[tuple[str, Opener]]:
    infos = [i for i in data.infolist() if not i.is_dir()]
    for info in infos:
        if not _safe_member(info.filename):
            raise InvalidInput("The zip file holds a member with an unsafe path (absolute or with '..').")
        if info.flag_bits & 0x1:
            raise InvalidInput("The zip file is encrypted.")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise PayloadTooLarge(
            f"The zip file unpacks to {total / 2**20:.0f} MiB, over the limit of {max_bytes / 2**20:.0f} MiB."
        )

    def opener(info: zipfile.ZipInfo) -> Opener:
        def open_member() -> IO[bytes]:
            with data.open(info) as fh:
                body = fh.read(info.file_size + 1)
            if len(body) > info.file_size:
                raise PayloadTooLarge("A zip member is larger than its header says.")
            return io.BytesIO(body)

        return open_member

    return [(i.filename, opener(i)) for i in infos]


def _read_headers(entries: list[tuple[str, Opener]]) -> list[dicom.SliceHeader]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    headers = []
    for name, open_entry in entries:
        try:
            with _quiet(), open_entry() as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
                if ds.get("SOPClassUID") == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
                    continue
                if not all(ds.get(k) for k in REQUIRED):
                    raise ValueError("a required attribute is missing: the file is truncated or broken")
                headers.extend(dicom.headers_of(ds, name))
        except InvalidDicomError:
            continue  # not a DICOM Part 10 file: a README, a thumbnail, ...
        except (PayloadTooLarge, InvalidInput):
            raise
        except Exception as exc:
            raise InvalidInput(f"The file {name} is corrupt or unreadable as DICOM.") from exc
    return headers


def _decode(entries: dict[str, Opener], chosen: list[dicom.SliceHeader]) -> list[NDArray[np.float32]]:
    import pydicom

    name = ""

    def read(file: str) -> Any:
        nonlocal name
        name = file
        with _quiet(), entries[file]() as fh:
            return pydicom.dcmread(fh)

    try:
        with _quiet():
            return dicom.decode_all(chosen, read)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"The pixel data of the file {name} is corrupt or cannot be decoded.") from exc


def load_dicom_entries(
    entries: list[tuple[str, Opener]],
    *,
    max_bytes: int = 2**31,
    series_uid: str | None = None,
    modalities: frozenset[str] = frozenset({"CT", "MR"}),
) -> Volume:
    """A volume from named DICOM byte sources (files of a folder or members of a zip)."""
    headers = _read_headers(entries)
    chosen = dicom.select_series(headers, series_uid=series_uid, modalities=modalities)
    geometry = dicom.plan_geometry(chosen)
    dicom.check_size(chosen, geometry, max_bytes)
    return dicom.assemble(chosen, geometry, _decode(dict(entries), chosen))


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".nii", ".nii.gz"))


def load_volume(
    path: Path,
    *,
    max_bytes: int = 2**31,
    series_uid: str | None = None,
    modalities: frozenset[str] = frozenset({"CT", "MR"}),
) -> Volume:
    """Read a DICOM folder, a .zip of one, a single DICOM file or a NIfTI file.

    CT comes back in Hounsfield units (float32); MR and NIfTI as stored intensities.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput("The input path does not exist.")

    def load(entries: list[tuple[str, Opener]]) -> Volume:
        return load_dicom_entries(entries, max_bytes=max_bytes, series_uid=series_uid, modalities=modalities)

    if path.is_dir():
        return load(_folder_entries(path))
    if _is_nifti(path):
        return load_nifti(path, max_bytes=max_bytes)
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return load(_zip_entries(archive, max_bytes))
        except zipfile.BadZipFile as exc:
            raise InvalidInput("The zip file is corrupt or unreadable.") from exc
    entries: list[tuple[str, Opener]] = [(path.name, _opener(path))]
    return load(entries)
