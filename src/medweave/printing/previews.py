"""What the slice viewer shows: a windowed, downsampled copy of the volume and its mask, and PNGs
of single slices (no I/O beyond bytes in and out).

The preview keeps at most :data:`MAX_IN_PLANE` pixels a side, so a 512x512x300 CT becomes about
20 MB of uint8, stored sealed beside the design. Windows are the radiological conventions of
Hounsfield units (bone: level 400, width 1800; soft tissue: level 40, width 400; Hofer,
"CT Teaching Manual", 4th ed., Thieme 2010, p. 16); images without HU are stretched between their
1st and 99th percentiles.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medweave.errors import NotFound
from medweave.printing.volume import Volume

MAX_IN_PLANE = 256
WINDOWS = {"bone": (400.0, 1800.0), "soft": (40.0, 400.0)}


def _window(data: NDArray[np.floating], volume: Volume, window: str) -> NDArray[np.uint8]:
    if volume.source.modality == "CT":
        level, width = WINDOWS[window]
        lo, hi = level - width / 2, level + width / 2
    else:
        lo, hi = (float(v) for v in np.percentile(data, [1, 99]))
        hi = hi if hi > lo else lo + 1.0
    scaled = (np.clip(data, lo, hi) - lo) * (255.0 / (hi - lo))
    return scaled.astype(np.uint8)


def step_for(volume: Volume) -> int:
    """The preview keeps every ``step``-th row and column: pixel (i, j) is voxel (i*step, j*step)."""
    _, j, i = volume.shape
    return max(1, int(np.ceil(max(i, j) / MAX_IN_PLANE)))


def make_preview(volume: Volume, mask: Volume | None, *, window: str = "bone") -> bytes:
    """The volume (and mask) as an .npz of uint8 slices, every ``step``-th pixel in-plane."""
    step = step_for(volume)
    image = _window(np.asarray(volume.data[:, ::step, ::step], dtype=np.float32), volume, window)
    arrays: dict[str, Any] = {"image": image}
    if mask is not None and mask.shape == volume.shape:
        arrays["mask"] = (np.asarray(mask.data[:, ::step, ::step]) > 0).astype(np.uint8)
    arrays["step"] = np.array([step])
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def load(preview: bytes) -> dict[str, NDArray[np.uint8]]:
    """The preview's slice stacks, decompressed once (the viewer asks for many slices in a row)."""
    with np.load(io.BytesIO(preview)) as arrays:
        return {name: arrays[name] for name in ("image", "mask") if name in arrays}


def slice_png(stacks: dict[str, NDArray[np.uint8]], k: int, layer: str) -> bytes:
    """Slice ``k`` as a PNG: the greyscale image, or the mask (255 where set)."""
    from PIL import Image

    if layer not in stacks:
        raise NotFound("no such layer")
    stack = stacks[layer]
    if not 0 <= k < stack.shape[0]:
        raise NotFound("no such slice")
    plane = stack[k] if layer == "image" else stack[k] * np.uint8(255)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(plane), mode="L").save(out, format="PNG")
    return out.getvalue()


def focus_slice(mask: Volume | None) -> int | None:
    """The slice with the most of the mask, where the slice viewer opens."""
    if mask is None:
        return None
    counts = np.count_nonzero(np.asarray(mask.data), axis=(1, 2))
    return int(np.argmax(counts)) if counts.any() else None
