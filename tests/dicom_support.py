"""Write synthetic but valid DICOM CT/MR series for the printing tests (pydicom, no mocks).

Geometry of a written series: rows run along +x (row cosine (1, 0, 0)); the column cosine is
(0, cos t, -sin t) for a gantry tilt t about x, and slices advance along +z (table motion), so a
tilted series has positions that do not advance along its normal, as on a real tilted gantry.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def directions(tilt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.radians(tilt_deg)
    return np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), -np.sin(t)])


def slice_origins(
    n: int,
    slice_spacing: float,
    origin: Sequence[float] = (-40.0, -30.0, -20.0),
    slice_positions: Sequence[float] | None = None,
) -> np.ndarray:
    """ImagePositionPatient of each slice: table positions along +z."""
    z = np.arange(n) * slice_spacing if slice_positions is None else np.asarray(slice_positions, float)
    assert len(z) == n
    out = np.tile(np.asarray(origin, float), (n, 1))
    out[:, 2] += z
    return out


def voxel_points(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    origin: Sequence[float] = (-40.0, -30.0, -20.0),
    tilt_deg: float = 0.0,
    slice_positions: Sequence[float] | None = None,
) -> np.ndarray:
    """LPS position (k, j, i, 3) of every stored pixel of a series written with these arguments."""
    k, j, i = shape
    row, col = directions(tilt_deg)
    pos = slice_origins(k, spacing[2], origin, slice_positions)
    ii = np.arange(i)[None, None, :, None] * spacing[0] * row
    jj = np.arange(j)[None, :, None, None] * spacing[1] * col
    return pos[:, None, None, :] + ii + jj


def sphere_hu(
    points: np.ndarray,
    centre: Sequence[float],
    radius: float,
    *,
    inside: float = 1000.0,
    outside: float = -1000.0,
    edge: float = 1.0,
) -> np.ndarray:
    """A sphere with a linear partial-volume edge ``edge`` mm wide."""
    d = np.linalg.norm(points - np.asarray(centre, float), axis=-1)
    frac = np.clip((radius - d) / edge + 0.5, 0.0, 1.0)
    return outside + (inside - outside) * frac


def new_instance(sop_class: str) -> Dataset:
    """An empty instance of ``sop_class`` with a fresh SOP Instance UID and its file meta."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    return ds


def make_datasets(
    volume_hu: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    origin: Sequence[float] = (-40.0, -30.0, -20.0),
    tilt_deg: float = 0.0,
    slice_positions: Sequence[float] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    modality: str = "CT",
    study_uid: str | None = None,
    series_uid: str | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
) -> list[Dataset]:
    """One dataset per slice, in slice order."""
    k, rows, cols = volume_hu.shape
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    row, col = directions(tilt_deg)
    positions = slice_origins(k, spacing[2], origin, slice_positions)
    sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    stored = np.clip(np.rint((volume_hu - intercept) / slope), -32768, 32767).astype(np.int16)
    out = []
    for s in range(k):
        ds = new_instance(sop_class)
        ds.PatientName = "Phantom^Test"
        ds.PatientID = "PHANTOM-1"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 2
        ds.InstanceNumber = k - s  # deliberately reversed: never sort by it
        ds.Modality = modality
        ds.SeriesDescription = "phantom"
        ds.BodyPartExamined = "HEAD"
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[s]]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]  # row spacing, column spacing
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleType = "HU" if modality == "CT" else "US"
        ds.PixelData = stored[s].tobytes()
        if transfer_syntax == JPEG2000Lossless:
            ds.compress(JPEG2000Lossless, stored[s])
        elif transfer_syntax != ExplicitVRLittleEndian:
            raise ValueError(transfer_syntax)
        out.append(ds)
    return out


def write_datasets(
    datasets: Sequence[Dataset],
    folder: Path,
    *,
    shuffle: bool = True,
    random_names: bool = True,
    seed: int = 0,
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    order = list(range(len(datasets)))
    if shuffle:
        rng.shuffle(order)
    paths = []
    for n, idx in enumerate(order):
        name = f"{rng.getrandbits(40):010x}" if random_names else f"IM{n:05d}.dcm"
        path = folder / name
        datasets[idx].save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_series(
    volume_hu: np.ndarray,
    spacing: tuple[float, float, float],
    folder: Path,
    *,
    origin: Sequence[float] = (-40.0, -30.0, -20.0),
    tilt_deg: float = 0.0,
    slice_positions: Sequence[float] | None = None,
    shuffle: bool = True,
    random_names: bool = True,
    transfer_syntax: str = ExplicitVRLittleEndian,
    modality: str = "CT",
    study_uid: str | None = None,
    series_uid: str | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    seed: int = 0,
) -> list[Path]:
    """Write ``volume_hu`` (k, j, i) as a series of int16 slices; ``spacing`` is (col, row, slice) mm."""
    datasets = make_datasets(
        volume_hu,
        spacing,
        origin=origin,
        tilt_deg=tilt_deg,
        slice_positions=slice_positions,
        transfer_syntax=transfer_syntax,
        modality=modality,
        study_uid=study_uid,
        series_uid=series_uid,
        slope=slope,
        intercept=intercept,
    )
    return write_datasets(datasets, folder, shuffle=shuffle, random_names=random_names, seed=seed)


def j2k_copies(source: Path, folder: Path, n: int, step: float = 2.5) -> list[Path]:
    """``n`` copies of one compressed slice at new positions along its normal, with new UIDs.

    The pixel data stays encapsulated (JPEG 2000) as in the original file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(source)
    iop = np.array([float(v) for v in base.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    start = np.array([float(v) for v in base.ImagePositionPatient])
    series_uid, study_uid = generate_uid(), generate_uid()
    paths = []
    for s in range(n):
        ds = pydicom.dcmread(source)
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        ds.ImagePositionPatient = [f"{v:.4f}" for v in start + s * step * normal]
        path = folder / f"j2k_{(s * 7) % n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"


def _item(**values: object) -> Dataset:
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def make_enhanced(
    volume_hu: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    origin: Sequence[float] = (-40.0, -30.0, -20.0),
    tilt_deg: float = 0.0,
    modality: str = "CT",
    frame_order: Sequence[int] | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    per_frame_rescale: bool = False,
) -> Dataset:
    """One Enhanced CT/MR image (PS3.3 A.38 / A.36) holding ``volume_hu`` as frames.

    Geometry and rescale live in functional groups (C.7.6.16): orientation, pixel measures and
    (unless ``per_frame_rescale``) the rescale are shared; each frame has its Plane Position.
    ``frame_order`` stores the slices in another order (the reader must sort by position). MR
    images carry no Pixel Value Transformation: their stored values are the intensities."""
    k, rows, cols = volume_hu.shape
    order = [int(n) for n in frame_order] if frame_order is not None else list(range(k))
    row, col = directions(tilt_deg)
    positions = slice_origins(k, spacing[2], origin)
    sop_class = ENHANCED_CT_IMAGE_STORAGE if modality == "CT" else ENHANCED_MR_IMAGE_STORAGE
    if modality != "CT":
        slope, intercept = 1.0, 0.0
    # Per-frame rescale: each slice its own intercept (as scanners may do), so a reader that
    # applied one frame's rescale to all would be off by up to 8 HU per slice.
    intercepts = [intercept - (8.0 * s if per_frame_rescale else 0.0) for s in range(k)]
    stored = np.stack(
        [np.clip(np.rint((volume_hu[s] - intercepts[s]) / slope), -32768, 32767) for s in range(k)]
    ).astype(np.int16)
    ds = new_instance(sop_class)
    ds.PatientName, ds.PatientID = "Phantom^Test", "PHANTOM-1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 3, 1
    ds.Modality, ds.SeriesDescription, ds.BodyPartExamined = modality, "enhanced phantom", "HEAD"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, k
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = _item(
        PlaneOrientationSequence=[_item(ImageOrientationPatient=[f"{v:.6f}" for v in (*row, *col)])],
        PixelMeasuresSequence=[
            _item(PixelSpacing=[f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"], SliceThickness=f"{spacing[2]:.6f}")
        ],
    )
    rescale = _item(RescaleSlope=f"{slope:g}", RescaleIntercept=f"{intercept:g}", RescaleType="HU")
    if modality == "CT" and not per_frame_rescale:
        shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for s in order:
        frame = _item(
            PlanePositionSequence=[_item(ImagePositionPatient=[f"{v:.6f}" for v in positions[s]])],
            FrameContentSequence=[_item(InStackPositionNumber=s + 1)],
        )
        if modality == "CT" and per_frame_rescale:
            frame.PixelValueTransformationSequence = [
                _item(RescaleSlope=f"{slope:g}", RescaleIntercept=f"{intercepts[s]:g}", RescaleType="HU")
            ]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.ascontiguousarray(stored[order]).tobytes()
    return ds
