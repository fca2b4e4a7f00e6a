"""The query-string parser (http://hl7.org/fhir/R4/search.html): examples and hypothesis properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.errors import InvalidInput
from medweave.records.searchparse import (
    IncludeSpec,
    escape,
    parse_search,
    split_escaped,
    unescape,
)


def test_and_or_prefix_modifier() -> None:
    req = parse_search(
        "Observation", [("date", "ge2013-01-01,2014"), ("date", "lt2015"), ("code:not", "a|b")]
    )
    assert [(p.name, p.modifier, len(p.values)) for p in req.params] == [
        ("date", None, 2),
        ("date", None, 1),
        ("code", "not", 1),
    ]
    assert req.params[0].values[0].prefix == "ge"
    assert req.params[0].values[1].prefix is None
    assert (req.params[2].values[0].system, req.params[2].values[0].code) == ("a", "b")


@pytest.mark.parametrize(
    ("raw", "system", "code"),
    [("x", None, "x"), ("s|x", "s", "x"), ("|x", "", "x"), ("s|", "s", None), ("a\\|b", None, "a|b")],
)
def test_token_forms(raw: str, system: str | None, code: str | None) -> None:
    value = parse_search("Patient", [("identifier", raw)]).params[0].values[0]
    assert (value.system, value.code) == (system, code)


def test_number_precision_and_quantity() -> None:
    value = (
        parse_search("Observation", [("value-quantity", "le5.4|http://unitsofmeasure.org|mg")])
        .params[0]
        .values[0]
    )
    assert value.prefix == "le"
    assert value.num == 5.4
    assert value.num_lo == pytest.approx(5.35)
    assert value.num_hi == pytest.approx(5.45)
    assert (value.system, value.code) == ("http://unitsofmeasure.org", "mg")
    value = parse_search("Observation", [("value-quantity", "100||kg")]).params[0].values[0]
    assert (value.num_lo, value.num_hi, value.system, value.code) == (99.5, 100.5, None, "kg")


def test_references() -> None:
    values = (
        parse_search("Observation", [("subject", "Patient/1,2,https://x/fhir/Patient/3")]).params[0].values
    )
    assert [(v.ref_type, v.ref_id) for v in values] == [("Patient", "1"), (None, "2"), ("Patient", "3")]
    value = parse_search("Observation", [("subject:Patient", "7")]).params[0].values[0]
    assert (value.ref_type, value.ref_id) == ("Patient", "7")


def test_control_parameters() -> None:
    req = parse_search(
        "Observation",
        [
            ("_count", "10"),
            ("_offset", "20"),
            ("_sort", "-date,code,_id"),
            ("_include", "Observation:subject:Patient"),
            ("_revinclude", "Provenance:target"),
            ("_revinclude", "DocumentReference:subject"),
            ("_summary", "count"),
            ("_total", "accurate"),
            ("_elements", "id,code"),
            ("_format", "json"),
        ],
    )
    assert (req.count, req.offset) == (10, 20)
    assert req.sort == [("date", True), ("code", False), ("_id", False)]
    assert req.include == [IncludeSpec("Observation", "subject", "Patient")]
    assert req.revinclude == [IncludeSpec("DocumentReference", "subject", None)]
    assert [n for n, _ in req.unknown] == ["_revinclude"]  # Provenance is not a type we store
    assert (req.summary, req.total, req.format, req.elements) == ("count", "accurate", "json", ["id", "code"])


def test_unknown_goes_to_list() -> None:
    req = parse_search(
        "Observation",
        [
            ("foo", "1"),
            ("subject.name", "x"),
            ("code:below", "x"),
            ("code-value-quantity", "x$1"),
            ("_has", "x"),
        ],
    )
    assert req.params == []
    assert [n for n, _ in req.unknown] == ["foo", "subject.name", "code:below", "code-value-quantity", "_has"]


def test_missing_and_empty() -> None:
    req = parse_search("Patient", [("birthdate:missing", "true"), ("name", "")])
    assert len(req.params) == 1
    assert req.params[0].missing is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("birthdate", "yesterday"),
        ("birthdate", "xx2013"),
        ("value-quantity", "abc"),
        ("value-quantity", "1|2"),
        ("value-quantity", "NaN"),
        ("birthdate:missing", "maybe"),
        ("_count", "-1"),
        ("_summary", "everything"),
        ("_include", "Observation"),
    ],
)
def test_malformed_values_raise(name: str, value: str) -> None:
    res_type = "Observation" if name.startswith(("value", "_include")) else "Patient"
    with pytest.raises(InvalidInput) as err:
        parse_search(res_type, [(name, value)])
    assert name.split(":")[0] in err.value.message


@given(st.text())
def test_escape_round_trip(text: str) -> None:
    assert unescape(escape(text)) == text
    assert [unescape(p) for p in split_escaped(escape(text), ",")] == [text]


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_escaped_or_values_split_back(parts: list[str]) -> None:
    joined = ",".join(escape(p) for p in parts)
    assert [unescape(p) for p in split_escaped(joined, ",")] == parts


NAMES = st.sampled_from(
    [
        "name",
        "birthdate",
        "identifier",
        "general-practitioner",
        "_id",
        "_lastUpdated",
        "_count",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "birthdate:missing",
        "name:exact",
        "identifier:not",
        "x",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(NAMES | st.text(max_size=10), st.text(max_size=20)), max_size=5))
def test_arbitrary_text_only_raises_invalid_input(pairs: list[tuple[str, str]]) -> None:
    with contextlib.suppress(InvalidInput):
        parse_search("Patient", pairs)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["value-quantity", "date", "code", "subject"]),
    st.text(alphabet="0123456789.-+eE|:TZ,\\$abcgtlsp/", max_size=25),
)
def test_typed_values_only_raise_invalid_input(name: str, value: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_search("Observation", [(name, value)])
