"""Assemble one DICOM CT or MR series into a :class:`Volume` (pure over pydicom Datasets).

The geometry follows DICOM PS3.3 C.7.6.2 (Image Plane module): ImageOrientationPatient gives the
row and column direction cosines, PixelSpacing is (row spacing, column spacing), i.e. the distance
between rows and then between columns, and ImagePositionPatient is the centre of the first pixel in
LPS millimetres. So voxel (i, j, k) lies at ``P_k + i * col_spacing * row_cos + j * row_spacing *
col_cos``. Slices are sorted by their position projected on the slice normal (row_cos x col_cos),
never by file order or InstanceNumber, which PS3.3 C.7.6.1 leaves free.

Rules and thresholds:

- Positions and orientations agree when they differ by at most 0.01 (mm or cosine): the epsilon
  3D Slicer's DICOMScalarVolumePlugin uses for the same checks (``self.epsilon = 0.01``).
- Gantry tilt (positions advance off the normal) is resampled in-plane, linearly, onto an
  orthogonal grid, as 3D Slicer's "acquisition geometry regularization" does. Tilts over 30 degrees
  are refused: clinical gantries tilt at most about 30 degrees (e.g. Siemens SOMATOM and GE
  LightSpeed specifications give +/-30 degrees), so more means broken headers.
- Non-uniform slice spacing is resampled linearly along the normal to the smallest spacing found.
  A gap over 3 times the median spacing is taken as missing slices and refused (the project rule,
  in the spirit of dicom2nifti's "slice increment not consistent" check); duplicate positions are
  refused.
- Pixel values become ``stored * RescaleSlope + RescaleIntercept`` (PS3.3 C.11.1.1.2, the
  Modality LUT), Hounsfield units for CT, as float32.
- Enhanced (multi-frame) CT and MR, and their Legacy Converted forms, keep each frame's geometry in
  functional groups (PS3.3 C.7.6.16): Plane Position, Plane Orientation, Pixel Measures and Pixel
  Value Transformation, per frame or shared by all frames (a per-frame value wins). Each frame
  becomes a slice of its own, so the rules above apply to frames exactly as to files. A
  multi-frame file without those groups has no trustworthy per-frame positions and is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medweave.errors import InvalidInput, PayloadTooLarge
from medweave.printing.volume import SourceInfo, Volume

EPSILON = 0.01  # mm and direction cosines; 3D Slicer DICOMScalarVolumePlugin
MAX_TILT_DEG = 30.0  # vendor gantry tilt ranges, +/-30 degrees
MAX_GAP_FACTOR = 3.0  # a gap over 3x the median spacing means missing slices
BYTES_PER_VOXEL = 4  # float32 output


@dataclass(frozen=True)
class SliceHeader:
    """What a slice's header (read without pixel data) tells about it."""

    name: str  # the file's relative path, for messages
    modality: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    rows: int
    columns: int
    has_pixels: bool
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing)
    orientation: tuple[float, ...] | None  # six direction cosines
    position: tuple[float, float, float] | None
    frames: int = 1
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    frame: int | None = None  # the frame of a multi-frame file this slice is (0-based)
    rescale: tuple[float, float] | None = None  # (slope, intercept) from a functional group

    @property
    def label(self) -> str:
        """The file, and the frame within it, for messages."""
        return self.name if self.frame is None else f"{self.name} (frame {self.frame + 1})"


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out


def header_of(ds: Dataset, name: str) -> SliceHeader:
    """Read a slice's header; the dataset may have been read with ``stop_before_pixels``."""
    spacing = _floats(ds.get("PixelSpacing"), 2)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    number = ds.get("SeriesNumber")
    try:
        series_number = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        series_number = None
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    has_pixels = ("PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds) or (
        "Rows" in ds and "Columns" in ds and "BitsAllocated" in ds
    )
    return SliceHeader(
        name=name,
        modality=str(ds.get("Modality", "") or ""),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        has_pixels=has_pixels,
        pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        position=(position[0], position[1], position[2]) if position else None,
        frames=frames,
        series_number=series_number,
        series_description=str(ds.get("SeriesDescription", "") or ""),
        body_part=str(ds.get("BodyPartExamined", "") or ""),
    )


def _group(ds: Dataset, sequence: str) -> Dataset | None:
    items = ds.get(sequence)
    return items[0] if items else None


def _in_groups(groups: Sequence[Dataset | None], sequence: str, attribute: str) -> object:
    """``attribute`` of the first of ``groups`` (per-frame, then shared) that has ``sequence``."""
    for group in groups:
        item = _group(group, sequence) if group is not None else None
        if item is not None and attribute in item:
            return item.get(attribute)
    return None


def headers_of(ds: Dataset, name: str) -> list[SliceHeader]:
    """The slices a file holds: itself, or each frame of an enhanced multi-frame image."""
    header = header_of(ds, name)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:  # a classic image (or a multi-frame one that select_series will refuse)
        return [header]
    if len(per_frame) != header.frames:
        raise InvalidInput(
            f"The file {name} has {header.frames} frames but {len(per_frame)} per-frame descriptions."
        )
    shared = _group(ds, "SharedFunctionalGroupsSequence")
    out = []
    for n, frame in enumerate(per_frame):
        groups = (frame, shared)
        spacing = _floats(_in_groups(groups, "PixelMeasuresSequence", "PixelSpacing"), 2)
        position = _floats(_in_groups(groups, "PlanePositionSequence", "ImagePositionPatient"), 3)
        slope = _in_groups(groups, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _in_groups(groups, "PixelValueTransformationSequence", "RescaleIntercept")
        try:
            rescale = (float(slope or 1), float(intercept or 0))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput(f"The file {name} (frame {n + 1}) has an unreadable rescale.") from None
        orientation = _in_groups(groups, "PlaneOrientationSequence", "ImageOrientationPatient")
        out.append(
            replace(
                header,
                pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
                orientation=_floats(orientation, 6),
                position=(position[0], position[1], position[2]) if position else None,
                frame=n,
                rescale=rescale,
            )
        )
    return out


def select_series(
    headers: Sequence[SliceHeader], *, series_uid: str | None, modalities: frozenset[str]
) -> list[SliceHeader]:
    """The slices of the one series to load, or InvalidInput saying why there is none."""
    if not headers:
        raise InvalidInput("No DICOM image files were found in the input.")
    if series_uid is not None:
        chosen = [h for h in headers if h.series_uid == series_uid]
        if not chosen:
            raise InvalidInput(f"The input holds no series with SeriesInstanceUID {series_uid}.")
    else:
        uids = sorted({h.series_uid for h in headers})
        if len(uids) > 1:
            raise InvalidInput(
                f"The input holds {len(uids)} series; choose one by SeriesInstanceUID: {', '.join(uids)}."
            )
        chosen = list(headers)
    wrong = sorted({h.modality or "(none)" for h in chosen if h.modality not in modalities})
    if wrong:
        raise InvalidInput(
            f"The series has modality {', '.join(wrong)}; only {', '.join(sorted(modalities))} "
            "images can be made into a volume."
        )
    no_pixels = [h.name for h in chosen if not h.has_pixels]
    if no_pixels:
        raise InvalidInput(f"The file {no_pixels[0]} holds no pixel data, so it is not an image.")
    multi = [h.name for h in chosen if h.frames > 1 and h.frame is None]
    if multi:
        raise InvalidInput(
            f"The file {multi[0]} is a multi-frame image without per-frame positions (functional "
            "groups), so its slices cannot be placed."
        )
    if len(chosen) < 2:
        raise InvalidInput("The series has a single slice; a 3D volume needs at least two slices.")
    return chosen


@dataclass(frozen=True)
class Geometry:
    """How the sorted slices map to an orthogonal, uniformly spaced grid."""

    order: tuple[int, ...]  # indices into the selected headers, sorted along the normal
    row_cos: NDArray[np.float64]
    col_cos: NDArray[np.float64]
    normal: NDArray[np.float64]
    col_spacing: float  # between columns (along row_cos), PixelSpacing[1]
    row_spacing: float  # between rows (along col_cos), PixelSpacing[0]
    depths: NDArray[np.float64]  # positions on the normal, sorted
    shifts: NDArray[np.float64]  # (n, 2) in-plane offset of each slice in pixels (i, j)
    origin: NDArray[np.float64]  # LPS of voxel (0, 0, 0) of the output grid
    pad: tuple[int, int, int, int]  # columns before, after; rows before, after (tilt)
    slice_spacing: float
    n_out: int  # slices in the output
    tilt_deg: float
    uniform: bool
    notes: tuple[str, ...] = field(default=())

    def affine(self) -> NDArray[np.float64]:
        a = np.eye(4)
        a[:3, 0] = self.row_cos * self.col_spacing
        a[:3, 1] = self.col_cos * self.row_spacing
        a[:3, 2] = self.normal * self.slice_spacing
        a[:3, 3] = self.origin
        return a


def plan_geometry(headers: Sequence[SliceHeader]) -> Geometry:
    """Check the slices form one volume and work out the output grid (no pixels needed)."""
    for h in headers:
        if h.pixel_spacing is None:
            raise InvalidInput(f"The file {h.label} has no valid PixelSpacing, so its geometry is unknown.")
        if h.orientation is None:
            raise InvalidInput(f"The file {h.label} has no valid ImageOrientationPatient.")
        if h.position is None:
            raise InvalidInput(f"The file {h.label} has no valid ImagePositionPatient.")
    first = headers[0]
    assert first.orientation and first.pixel_spacing
    for h in headers[1:]:
        assert h.orientation and h.pixel_spacing
        if np.max(np.abs(np.subtract(h.orientation, first.orientation))) > EPSILON:
            raise InvalidInput("The slices of the series have different orientations.")
        if (h.rows, h.columns) != (first.rows, first.columns):
            raise InvalidInput(
                f"The slices of the series have different matrix sizes ({first.rows}x{first.columns} "
                f"and {h.rows}x{h.columns})."
            )
        if np.max(np.abs(np.subtract(h.pixel_spacing, first.pixel_spacing))) > EPSILON:
            raise InvalidInput("The slices of the series have different pixel spacings.")
    row_cos = np.asarray(first.orientation[:3], dtype=np.float64)
    col_cos = np.asarray(first.orientation[3:], dtype=np.float64)
    if abs(np.linalg.norm(row_cos) - 1) > EPSILON or abs(np.linalg.norm(col_cos) - 1) > EPSILON:
        raise InvalidInput("ImageOrientationPatient does not hold unit direction cosines.")
    if abs(float(row_cos @ col_cos)) > EPSILON:
        raise InvalidInput("ImageOrientationPatient's row and column directions are not perpendicular.")
    row_cos /= np.linalg.norm(row_cos)
    col_cos -= (col_cos @ row_cos) * row_cos
    col_cos /= np.linalg.norm(col_cos)
    normal = np.cross(row_cos, col_cos)
    row_spacing, col_spacing = first.pixel_spacing
    if row_spacing <= 0 or col_spacing <= 0:
        raise InvalidInput("PixelSpacing must be positive.")

    positions = np.array([h.position for h in headers], dtype=np.float64)
    raw_depths = positions @ normal
    order = np.argsort(raw_depths, kind="stable")
    depths = raw_depths[order]
    positions = positions[order]
    steps = np.diff(depths)
    if np.any(steps <= EPSILON):
        raise InvalidInput("Two slices of the series share one position (duplicate slices).")
    median = float(np.median(steps))
    if steps.max() > MAX_GAP_FACTOR * median:
        at = int(np.argmax(steps))
        raise InvalidInput(
            f"The series has a gap of {steps[at]:.2f} mm between slices, over {MAX_GAP_FACTOR:g} times the "
            f"median spacing of {median:.2f} mm: slices are missing."
        )

    notes: list[str] = []
    # In-plane offsets of every slice from the first, in pixels along (row_cos, col_cos).
    offsets = positions - positions[0]
    inplane = offsets - np.outer(offsets @ normal, normal)
    shifts = np.stack([inplane @ row_cos / col_spacing, inplane @ col_cos / row_spacing], axis=1)
    drift = np.linalg.norm(inplane, axis=1)
    tilt_deg = 0.0
    pad = (0, 0, 0, 0)
    origin = positions[0].copy()
    if drift.max() > EPSILON:
        tilt_deg = float(np.degrees(np.max(np.arctan2(drift[1:], depths[1:] - depths[0]))))
        if tilt_deg > MAX_TILT_DEG:
            raise InvalidInput(
                f"The slices are tilted by {tilt_deg:.1f} degrees, over the {MAX_TILT_DEG:g} degrees a "
                "gantry can tilt, so the positions are not trustworthy."
            )
        lo = np.floor(np.minimum(shifts.min(axis=0), 0)).astype(int)
        hi = np.ceil(np.maximum(shifts.max(axis=0), 0)).astype(int)
        pad = (int(-lo[0]), int(hi[0]), int(-lo[1]), int(hi[1]))
        origin = origin + lo[0] * col_spacing * row_cos + lo[1] * row_spacing * col_cos
        notes.append(
            f"gantry tilt of {tilt_deg:.2f} degrees resampled in-plane (linear) to an orthogonal grid"
        )
    else:
        shifts = np.zeros_like(shifts)

    uniform = bool(np.max(np.abs(steps - median)) <= EPSILON)
    if uniform:
        slice_spacing = (depths[-1] - depths[0]) / (len(depths) - 1)
        n_out = len(depths)
    else:
        slice_spacing = float(steps.min())
        n_out = math.floor((depths[-1] - depths[0]) / slice_spacing + 1e-6) + 1
        notes.append(
            f"non-uniform slice spacing ({steps.min():.3f} to {steps.max():.3f} mm) resampled (linear) "
            f"to {slice_spacing:.3f} mm"
        )
    return Geometry(
        order=tuple(int(i) for i in order),
        row_cos=row_cos,
        col_cos=col_cos,
        normal=normal,
        col_spacing=float(col_spacing),
        row_spacing=float(row_spacing),
        depths=depths,
        shifts=shifts,
        origin=origin,
        pad=pad,
        slice_spacing=float(slice_spacing),
        n_out=n_out,
        tilt_deg=tilt_deg,
        uniform=uniform,
        notes=tuple(notes),
    )


def output_bytes(headers: Sequence[SliceHeader], geometry: Geometry) -> int:
    """Size of the float32 output volume, known from the headers alone."""
    rows = headers[0].rows + geometry.pad[2] + geometry.pad[3]
    cols = headers[0].columns + geometry.pad[0] + geometry.pad[1]
    # Decoding holds the stored slices and the output at once.
    return (
        max(rows * cols * geometry.n_out, headers[0].rows * headers[0].columns * len(headers))
        * BYTES_PER_VOXEL
    )


def check_size(headers: Sequence[SliceHeader], geometry: Geometry, max_bytes: int) -> None:
    need = output_bytes(headers, geometry)
    if need > max_bytes:
        raise PayloadTooLarge(
            f"The volume would take {need / 2**20:.0f} MiB, over the limit of {max_bytes / 2**20:.0f} MiB."
        )


def slice_values(ds: Dataset) -> NDArray[np.float32]:
    """One slice's pixels through the Modality LUT's rescale (Hounsfield units for CT)."""
    stored = ds.pixel_array
    if stored.ndim != 2:
        raise InvalidInput("A slice's pixel data is not a single greyscale image.")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return _rescaled(stored, slope, intercept)


def file_values(ds: Dataset, headers: Sequence[SliceHeader]) -> list[NDArray[np.float32]]:
    """The rescaled slices ``headers`` name in one file (decoded once), in the order given."""
    if len(headers) == 1 and headers[0].frame is None:
        return [slice_values(ds)]
    stored = ds.pixel_array
    if stored.ndim == 2 and headers[0].frames == 1:  # an enhanced image of one frame
        stored = stored[None]
    if stored.ndim != 3 or stored.shape[0] != headers[0].frames:
        raise InvalidInput(f"The file {headers[0].name}'s pixel data does not hold its frames as greyscale.")
    out = []
    for h in headers:
        assert h.frame is not None and h.rescale is not None
        out.append(_rescaled(stored[h.frame], *h.rescale))
    return out


def _rescaled(stored: NDArray[Any], slope: float, intercept: float) -> NDArray[np.float32]:
    out = stored.astype(np.float32)
    if slope != 1:
        out *= np.float32(slope)
    if intercept != 0:
        out += np.float32(intercept)
    return out


def decode_all(chosen: Sequence[SliceHeader], read: Callable[[str], Dataset]) -> list[NDArray[np.float32]]:
    """Every chosen slice's values, in ``chosen`` order, reading each file once with ``read``."""
    by_file: dict[str, list[int]] = {}
    for n, h in enumerate(chosen):
        by_file.setdefault(h.name, []).append(n)
    out: dict[int, NDArray[np.float32]] = {}
    for name, at in by_file.items():
        out.update(zip(at, file_values(read(name), [chosen[n] for n in at]), strict=True))
    return [out[n] for n in range(len(chosen))]


def _shift_slice(
    img: NDArray[np.float32], di: float, dj: float, pad: tuple[int, int, int, int], fill: float
) -> NDArray[np.float32]:
    """Place a slice on the padded grid, offset by (di, dj) pixels, with bilinear interpolation."""
    from scipy import ndimage

    rows, cols = img.shape
    out_shape = (rows + pad[2] + pad[3], cols + pad[0] + pad[1])
    # Output pixel (j, i) samples input (j - pad_j - dj, i - pad_i - di).
    return ndimage.affine_transform(
        img,
        np.eye(2),
        offset=(-pad[2] - dj, -pad[0] - di),
        output_shape=out_shape,
        order=1,
        mode="constant",
        cval=fill,
    ).astype(np.float32, copy=False)


def assemble(
    headers: Sequence[SliceHeader], geometry: Geometry, slices: Sequence[NDArray[np.float32]]
) -> Volume:
    """The volume from the selected headers and their rescaled slices, both in header order."""
    stack = [slices[i] for i in geometry.order]
    data = np.stack(stack).astype(np.float32, copy=False)
    if geometry.tilt_deg > 0:
        fill = float(data.min())
        data = np.stack(
            [
                _shift_slice(s, float(d[0]), float(d[1]), geometry.pad, fill)
                for s, d in zip(data, geometry.shifts, strict=True)
            ]
        )
    if not geometry.uniform:
        target = geometry.depths[0] + np.arange(geometry.n_out) * geometry.slice_spacing
        upper = np.clip(np.searchsorted(geometry.depths, target, side="right"), 1, len(geometry.depths) - 1)
        lower = upper - 1
        w = (target - geometry.depths[lower]) / (geometry.depths[upper] - geometry.depths[lower])
        w = np.clip(w, 0.0, 1.0).astype(np.float32)[:, None, None]
        data = (1 - w) * data[lower] + w * data[upper]
    ordered = [headers[i] for i in geometry.order]
    first = ordered[0]
    instances = tuple(dict.fromkeys(h.sop_instance_uid for h in ordered))  # frames share their file's
    source = SourceInfo(
        modality=first.modality,
        study_uid=first.study_uid,
        series_uid=first.series_uid,
        sop_instance_uids=instances,
        notes=geometry.notes,
        sop_class_uid=first.sop_class_uid,
        number_of_instances=len(instances),
        series_number=first.series_number,
        series_description=first.series_description,
        body_part=first.body_part,
    )
    return Volume(np.ascontiguousarray(data, dtype=np.float32), geometry.affine(), source)


def volume_from_datasets(
    datasets: Sequence[Dataset],
    *,
    names: Sequence[str] | None = None,
    series_uid: str | None = None,
    modalities: frozenset[str] = frozenset({"CT", "MR"}),
    max_bytes: int = 2**31,
) -> Volume:
    """Everything at once, for datasets already in memory (tests, a PACS pull)."""
    names = list(names) if names is not None else [f"instance {n + 1}" for n in range(len(datasets))]
    headers = [h for ds, name in zip(datasets, names, strict=True) for h in headers_of(ds, name)]
    chosen = select_series(headers, series_uid=series_uid, modalities=modalities)
    geometry = plan_geometry(chosen)
    check_size(chosen, geometry, max_bytes)
    by_name = dict(zip(names, datasets, strict=True))
    return assemble(chosen, geometry, decode_all(chosen, by_name.__getitem__))
