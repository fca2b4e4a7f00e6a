"""The SVG trend chart and the numeric series it draws (pure code, no server)."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.web.pages.charts import Point, Series, chartable, describe, fmt, nice_ticks, trend_svg
from medweave.web.pages.views import numeric_series, observation_rows, parse_when

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def series(*values: float, title: str = "Systolic blood pressure", unit: str = "mmHg") -> Series:
    points = tuple(Point(T0 + timedelta(days=30 * i), v) for i, v in enumerate(values))
    return Series(key="http://loinc.org|8480-6", title=title, unit=unit, points=points)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_chart_is_accessible_and_draws_every_point() -> None:
    root = parse(trend_svg(series(148, 142, 139, 135, 131), chart_id="c1"))
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "Systolic blood pressure (mmHg)"  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text  # type: ignore[union-attr]
    assert desc == (
        "5 measurements from 2024-01-01 to 2024-04-30; lowest 131 mmHg, highest 148 mmHg, "
        "latest 131 mmHg on 2024-04-30."
    )
    polyline = root.find(f".//{SVG}polyline")
    assert polyline is not None
    coords = [tuple(map(float, pair.split(","))) for pair in polyline.get("points", "").split()]
    assert len(coords) == 5
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    assert xs == sorted(xs)  # time runs left to right
    assert ys == sorted(ys)  # falling values go down the screen (y grows downwards)
    circles = root.findall(f".//{SVG}circle")
    assert [c.find(f"{SVG}title").text for c in circles][-1] == "2024-04-30: 131 mmHg"  # type: ignore[union-attr]


def test_chart_text_is_escaped() -> None:
    svg = trend_svg(series(1, 2, title='<script>alert("x")</script> & co', unit="<u>"), chart_id="c-1")
    root = parse(svg)  # still well-formed XML
    assert "<script>" not in svg
    assert root.find(f"{SVG}title").text == '<script>alert("x")</script> & co (<u>)'  # type: ignore[union-attr]
    assert root.get("id") == "c-1"
    for bad in ('a"b', "1x", "", "a b"):
        with pytest.raises(ValueError):
            trend_svg(series(1, 2), chart_id=bad)


def test_points_are_sorted_by_time() -> None:
    shuffled = Series(
        "k",
        "Weight",
        "kg",
        (Point(T0 + timedelta(days=2), 3), Point(T0, 1), Point(T0 + timedelta(days=1), 2)),
    )
    root = parse(trend_svg(shuffled, chart_id="w"))
    titles = [c.find(f"{SVG}title").text for c in root.findall(f".//{SVG}circle")]  # type: ignore[union-attr]
    assert titles == ["2024-01-01: 1 kg", "2024-01-02: 2 kg", "2024-01-03: 3 kg"]


def test_flat_and_single_point_series() -> None:
    flat = parse(trend_svg(series(80, 80, 80), chart_id="f"))
    ys = {pair.split(",")[1] for pair in flat.find(f".//{SVG}polyline").get("points", "").split()}  # type: ignore[union-attr]
    assert len(ys) == 1
    one = parse(trend_svg(series(5), chart_id="o"))
    assert len(one.findall(f".//{SVG}circle")) == 1
    with pytest.raises(ValueError):
        trend_svg(Series("k", "t", "", ()), chart_id="e")


def test_no_style_attributes_for_the_csp() -> None:
    svg = trend_svg(series(1, 5, 3), chart_id="s")
    assert "style=" not in svg and "<style" not in svg and "<script" not in svg


def test_fmt() -> None:
    assert [fmt(v) for v in (120.0, 7.25, 0.1 + 0.2, -0.0, 1e6, -3.5)] == [
        "120",
        "7.25",
        "0.3",
        "0",
        "1000000",
        "-3.5",
    ]
    with pytest.raises(ValueError):
        fmt(float("nan"))


def test_describe_without_unit() -> None:
    assert describe(series(1, 2, unit="")).endswith("latest 2 on 2024-01-31.")


@given(
    lo=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    span=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_ticks_cover_the_range_in_round_steps(lo: float, span: float) -> None:
    hi = lo + span
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo + 1e-6 and ticks[-1] >= hi - 1e-6
    assert 2 <= len(ticks) <= 12
    steps = [b - a for a, b in itertools.pairwise(ticks)]
    assert all(math.isclose(step, steps[0], rel_tol=1e-6) for step in steps)


def test_chartable_needs_two_points() -> None:
    assert chartable([series(1), series(1, 2)]) == [series(1, 2)]


def _obs(code: str, value: object, when: str, unit: str = "kg") -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": f"code {code}"}]},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit},
    }


def test_numeric_series_group_by_code_and_skip_what_is_not_numeric() -> None:
    observations = [
        _obs("29463-7", 80.5, "2024-03-01"),
        _obs("29463-7", 82, "2024-01-01T08:00:00+01:00"),
        _obs("29463-7", 81, "2024-02"),
        _obs("29463-7", 180, "2024-04-01", unit="lb"),  # another unit: would make the line lie
        _obs("8302-2", True, "2024-01-01"),  # a boolean is not a number
        _obs("8302-2", 170, "not a date"),
        {"resourceType": "Observation", "code": {"text": "Note"}, "valueString": "fine"},
        {
            "resourceType": "Observation",
            "code": {"text": "Blood pressure"},
            "effectiveDateTime": "2024-01-05",
            "component": [
                {
                    "code": {"coding": [{"code": "8480-6", "display": "Systolic"}]},
                    "valueQuantity": {"value": 120, "unit": "mmHg"},
                },
                {
                    "code": {"coding": [{"code": "8462-4", "display": "Diastolic"}]},
                    "valueQuantity": {"value": 80, "unit": "mmHg"},
                },
            ],
        },
    ]
    found = {s.title: s for s in numeric_series(observations)}
    assert set(found) == {"code 29463-7", "Systolic", "Diastolic"}
    weight = found["code 29463-7"]
    assert weight.unit == "kg"
    assert [p.value for p in weight.points] == [82, 81, 80.5]  # oldest first
    rows = observation_rows(observations)
    assert rows[0].value == "180 lb" and rows[-1].value == "fine"
    assert any(r.value == "Systolic 120 mmHg; Diastolic 80 mmHg" for r in rows)


def test_parse_when() -> None:
    assert parse_when("2024") == datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_when("2024-02-03T04:05:06Z") == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert parse_when("garbage") is None and parse_when(None) is None


def test_shades_are_drawn_behind_the_line_and_the_axis_covers_them() -> None:
    from medweave.web.pages.charts import Shade

    series = Series("phq9", "PHQ-9 total", "", (Point(T0, 12), Point(T0 + timedelta(days=14), 8)))
    svg = trend_svg(series, chart_id="phq", shades=[Shade(0, 5, "minimal"), Shade(20, 27, "severe")])
    assert svg.index('class="shades"') < svg.index('class="line"')  # behind the line
    assert ">minimal</text>" in svg and ">severe</text>" in svg
    assert ">25</text>" in svg or ">30</text>" in svg  # the axis reaches the top band, not just 12
    plain = trend_svg(series, chart_id="phq")
    assert 'class="shades"' not in plain
