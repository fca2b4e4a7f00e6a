"""Tables to model inputs: deterministic one-hot encoding, age bands, coded labels, survival
targets, and the SHA-256 fingerprint of a dataset. Pure functions over pandas and numpy; no I/O.

pandas is imported inside the functions, so that importing this module needs only numpy.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: The target of a survival dataset, as scikit-survival's estimators take it.
SURVIVAL_DTYPE = np.dtype([("event", "?"), ("time", "<f8")])

#: Upper bounds (exclusive) and labels of the age bands in ``groups``.
AGE_BANDS: tuple[tuple[float, str], ...] = (
    (40, "<40"),
    (50, "40-49"),
    (60, "50-59"),
    (70, "60-69"),
    (80, "70-79"),
    (math.inf, "80+"),
)

MISSING_LEVEL = "<missing>"
_FINGERPRINT_MAGIC = b"medweave-dataset-fingerprint/1\n"
_CANONICAL_NAN = 0x7FF8000000000000


def _is_categorical(column: pd.Series) -> bool:
    import pandas as pd

    dtype = column.dtype
    types = pd.api.types
    return (
        isinstance(dtype, pd.CategoricalDtype) or types.is_object_dtype(dtype) or types.is_string_dtype(dtype)
    )


def _as_text(column: pd.Series) -> np.ndarray[Any, Any]:
    return np.array([None if _missing(v) else str(v) for v in column.astype(object)], dtype=object)


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def one_hot(raw: pd.DataFrame, *, drop_first: bool = True) -> pd.DataFrame:
    """Encode categorical columns as 0/1 columns, deterministically; every output column is float64.

    Columns keep their order. A numeric or boolean column passes through as float64, NaN kept. A
    categorical column (pandas ``category``, ``object`` or string dtype) becomes one column per
    level, named ``"<column>=<level>"`` with the level as ``str()``; the levels are those present
    in the data, in the declared category order for a ``category`` column and in code-point order
    of their text otherwise. With ``drop_first`` (the default, as scikit-survival's
    ``encode_categorical``, so that a Cox or linear model is not collinear) the first level is the
    reference and has no column. A column with missing values gains a last indicator column
    ``"<column>=<missing>"``; a missing row is 0 in every level column.
    """
    import pandas as pd

    out: dict[str, np.ndarray[Any, Any]] = {}

    def put(key: str, values: np.ndarray[Any, Any]) -> None:
        if key in out:
            raise ValueError(f"two encoded columns would be named {key!r}")
        out[key] = values

    for name in raw.columns:
        column = raw[name]
        if not _is_categorical(column):
            put(str(name), column.to_numpy(dtype="float64", na_value=np.nan))
            continue
        text = _as_text(column)
        present = {t for t in text if t is not None}
        if isinstance(column.dtype, pd.CategoricalDtype):
            levels = [str(c) for c in column.dtype.categories if str(c) in present]
        else:
            levels = sorted(present)
        for level in levels[1:] if drop_first else levels:
            put(f"{name}={level}", (text == level).astype("float64"))
        absent = np.array([t is None for t in text], dtype=bool)
        if absent.any():
            put(f"{name}={MISSING_LEVEL}", absent.astype("float64"))
    return pd.DataFrame(out, index=raw.index)


def age_band(age: Iterable[Any]) -> np.ndarray[Any, Any]:
    """Label each age in years with its band in `AGE_BANDS`; NaN is "unknown"."""
    values = np.asarray(list(age), dtype="float64")
    labels = np.full(values.shape, "unknown", dtype=object)
    lower = -math.inf
    for upper, label in AGE_BANDS:
        labels[(values >= lower) & (values < upper)] = label
        lower = upper
    return labels


def coded(column: Iterable[Any], codes: Mapping[str, str]) -> np.ndarray[Any, Any]:
    """Map each value's text (``1.0`` read as ``1``) through ``codes``; others are "unknown"."""
    out = []
    for value in column:
        if _missing(value):
            out.append("unknown")
            continue
        text = str(value)
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        out.append(codes.get(text, "unknown"))
    return np.array(out, dtype=object)


def _canonical(values: Any) -> bytes:
    array = np.array(values, dtype="<f8") + 0.0  # copies; -0.0 + 0.0 is +0.0
    bits = array.view("<u8")
    bits[np.isnan(array)] = _CANONICAL_NAN
    return array.tobytes()


def _named(name: str) -> bytes:
    encoded = name.encode("utf-8")
    return struct.pack("<Q", len(encoded)) + encoded


def fingerprint(features: pd.DataFrame, target: np.ndarray[Any, Any]) -> str:
    """SHA-256 (hex) of a canonical serialisation of ``features`` and ``target``.

    The bytes hashed are: the line ``medweave-dataset-fingerprint/1``; the row and column counts as
    unsigned 64-bit little-endian integers; then each feature column in order, as its name (UTF-8,
    preceded by its byte length as a u64 LE) followed by its values as float64 little-endian, with
    every NaN written as the one quiet NaN ``0x7FF8000000000000`` and -0.0 as 0.0; then the target
    the same way, one named field at a time for a structured array (``event`` as 0.0/1.0, then
    ``time``) and under the name ``target`` otherwise. Row and column order and names count; the
    index and the dtypes (int, bool or float holding the same numbers) do not.
    """
    digest = hashlib.sha256(_FINGERPRINT_MAGIC)
    digest.update(struct.pack("<QQ", len(features), features.shape[1]))
    for name in features.columns:
        digest.update(_named(str(name)))
        digest.update(_canonical(features[name].to_numpy(dtype="float64", na_value=np.nan)))
    target = np.asarray(target)
    if target.dtype.names:
        for name in target.dtype.names:
            digest.update(_named(name))
            digest.update(_canonical(target[name]))
    else:
        digest.update(_named("target"))
        digest.update(_canonical(target))
    return digest.hexdigest()


def survival_target(event: Iterable[Any], time: Iterable[Any]) -> np.ndarray[Any, Any]:
    events = np.asarray(list(event)).astype(bool)
    times = np.asarray(list(time), dtype="float64")
    out = np.empty(len(events), dtype=SURVIVAL_DTYPE)
    out["event"] = events
    out["time"] = times
    return out
