"""Line plots of x against y as inline SVG (reliability curves, ROC, decision curves, drift). Pure.

Like ``charts.trend_svg``: no JavaScript, no inline styles; classes the stylesheet colours; a
``<title>`` and a ``<desc>`` in words, and the page shows the same numbers in a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from medweave.web.pages.charts import fmt, nice_ticks

WIDTH, HEIGHT = 480, 320
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 48


@dataclass(frozen=True)
class Line:
    """One curve; ``style`` is a class: ``model``, ``reference`` (dashed) or ``other``."""

    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    style: str = "model"


def _finite(line: Line) -> list[tuple[float, float]]:
    return [(x, y) for x, y in zip(line.xs, line.ys, strict=True) if math.isfinite(x) and math.isfinite(y)]


def xy_svg(
    lines: Sequence[Line],
    *,
    plot_id: str,
    title: str,
    x_label: str,
    y_label: str,
    description: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
) -> str:
    """An accessible plot of ``lines``; ranges default to the data's (with round ticks)."""
    points = [p for line in lines for p in _finite(line)]
    if not points:
        raise ValueError("a plot needs at least one finite point")
    xs = [x for x, _ in points] + list(x_range or ())
    ys = [y for _, y in points] + list(y_range or ())
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = _LEFT, WIDTH - _RIGHT, HEIGHT - _BOTTOM, _TOP
    kx = (x1 - x0) / (x_ticks[-1] - x_ticks[0])
    ky = (y1 - y0) / (y_ticks[-1] - y_ticks[0])

    def at(x: float, y: float) -> str:
        return f"{x0 + kx * (x - x_ticks[0]):.1f},{y0 + ky * (y - y_ticks[0]):.1f}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{plot_id}-title {plot_id}-desc" focusable="false" id="{plot_id}">',
        f'<title id="{plot_id}-title">{escape(title)}</title>',
        f'<desc id="{plot_id}-desc">{escape(description)}</desc>',
        '<g class="grid" aria-hidden="true">',
    ]
    for t in y_ticks:
        y = y0 + ky * (t - y_ticks[0])
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    for t in x_ticks:
        x = x0 + kx * (t - x_ticks[0])
        out.append(f'<text x="{x:.1f}" y="{y0 + 18}" text-anchor="middle">{fmt(t)}</text>')
    out.append(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="14" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(y0 + y1) / 2:.1f})">{escape(y_label)}</text></g>'
    )
    for n, line in enumerate(lines):
        coords = " ".join(at(x, y) for x, y in _finite(line))
        if coords:
            classes = f"curve curve-{escape(line.style)} curve-{n % 4}"
            out.append(
                f'<polyline class="{classes}" fill="none" points="{coords}">'
                f"<title>{escape(line.label)}</title></polyline>"
            )
    out.append("</svg>")
    return "".join(out)
