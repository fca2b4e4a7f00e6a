"""Trend charts of numeric observations as inline SVG, drawn on the server. Pure: no I/O.

No JavaScript and no inline styles (the CSP forbids both): the SVG uses classes that the site's
stylesheet colours, plus presentation attributes. Each chart has a ``<title>`` and a ``<desc>``
(named by ``aria-labelledby``, ``role="img"``) that say what it shows in words, and each point has
its own ``<title>``; the page puts the same numbers in a table next to the chart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 24, 16, 44
_CHART_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Point:
    when: datetime
    value: float


@dataclass(frozen=True)
class Series:
    """The numeric values of one observation code, oldest first."""

    key: str  # system|code, or the text when there is no coding
    title: str
    unit: str
    points: tuple[Point, ...]


def fmt(value: float) -> str:
    """A number as a person writes it: no exponent, no trailing zeros, at most 3 decimals."""
    if not math.isfinite(value):
        raise ValueError("chart values must be finite")
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 x 10^n) covering ``lo``..``hi``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or count < 2:
        raise ValueError("need finite bounds and at least two ticks")
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo <= max(abs(lo), abs(hi), 1.0) * 1e-9:  # flat (or flat but for rounding)
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step)
    last = math.ceil(hi / step - 1e-9)
    digits = max(0, 3 - math.floor(math.log10(step)))  # drop float noise, keep the step's digits
    return [round(k * step, digits) for k in range(first, last + 1)]


def _date(when: datetime) -> str:
    return when.strftime("%Y-%m-%d")


def describe(series: Series) -> str:
    """The chart in one sentence, for its ``<desc>`` (and any reader without the picture)."""
    values = [p.value for p in series.points]
    unit = f" {series.unit}" if series.unit else ""
    first, last = series.points[0], series.points[-1]
    return (
        f"{len(values)} measurements from {_date(first.when)} to {_date(last.when)}; "
        f"lowest {fmt(min(values))}{unit}, highest {fmt(max(values))}{unit}, "
        f"latest {fmt(last.value)}{unit} on {_date(last.when)}."
    )


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    """Coefficients of the linear map from lo..hi onto a..b (the midpoint when lo == hi)."""
    if hi == lo:
        return 0.0, (a + b) / 2
    k = (b - a) / (hi - lo)
    return k, a - k * lo


@dataclass(frozen=True)
class Shade:
    """A labelled band of values drawn behind the line (a severity range: 10-14 "moderate")."""

    low: float
    high: float
    label: str


def trend_svg(
    series: Series,
    *,
    chart_id: str,
    width: int = WIDTH,
    height: int = HEIGHT,
    shades: Sequence[Shade] = (),
) -> str:
    """An accessible line chart of ``series`` over time; ``chart_id`` must be unique in the page.
    With ``shades``, the value axis covers them all and each is drawn as a labelled band."""
    if not series.points:
        raise ValueError("a trend chart needs at least one point")
    if not _CHART_ID.fullmatch(chart_id):
        raise ValueError("chart_id must be a plain HTML id (a letter, then letters, digits, _ or -)")
    points = sorted(series.points, key=lambda p: p.when)
    values = [p.value for p in points] + [v for s in shades for v in (s.low, s.high)]
    ticks = nice_ticks(min(values), max(values))
    x0, x1, y0, y1 = _LEFT, width - _RIGHT, height - _BOTTOM, _TOP
    t_lo, t_hi = points[0].when.timestamp(), points[-1].when.timestamp()
    kx, cx = _scale(t_lo, t_hi, x0, x1)
    ky, cy = _scale(ticks[0], ticks[-1], y0, y1)
    xy = [(kx * p.when.timestamp() + cx, ky * p.value + cy) for p in points]
    unit = f" {series.unit}" if series.unit else ""
    title = f"{series.title}{f' ({series.unit})' if series.unit else ''}"
    ident = chart_id
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" focusable="false" id="{ident}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(describe(series))}</desc>',
    ]
    if shades:
        out.append('<g class="shades" aria-hidden="true">')
        for n, shade in enumerate(shades):
            top, bottom = ky * shade.high + cy, ky * shade.low + cy
            out.append(
                f'<rect class="shade-{n % 5}" x="{x0}" y="{top:.1f}" width="{x1 - x0}" '
                f'height="{max(bottom - top, 1):.1f}"/>'
                f'<text x="{x1 - 4}" y="{top + 12:.1f}" text-anchor="end">{escape(shade.label)}</text>'
            )
        out.append("</g>")
    out.append('<g class="grid" aria-hidden="true">')
    for tick in ticks:
        y = ky * tick + cy
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}"/>')
    out.append("</g>")
    out.append('<g class="axis" aria-hidden="true">')
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>')
    for tick in ticks:
        y = ky * tick + cy
        out.append(f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end">{fmt(tick)}</text>')
    labels = [(xy[0][0], points[0].when, "start")]
    if len(points) > 1 and points[-1].when.date() != points[0].when.date():
        labels.append((xy[-1][0], points[-1].when, "end"))
    for x, when, anchor in labels:
        out.append(f'<text x="{x:.1f}" y="{y0 + 24}" text-anchor="{anchor}">{_date(when)}</text>')
    out.append("</g>")
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    out.append(f'<polyline class="line" fill="none" points="{coords}"/>')
    out.append('<g class="marks">')
    for (x, y), p in zip(xy, points, strict=True):
        label = escape(f"{_date(p.when)}: {fmt(p.value)}{unit}")
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4"><title>{label}</title></circle>')
    out.append("</g></svg>")
    return "".join(out)


def chartable(series: Sequence[Series], *, minimum: int = 2) -> list[Series]:
    """The series worth a trend line: at least ``minimum`` points."""
    return [s for s in series if len(s.points) >= minimum]
