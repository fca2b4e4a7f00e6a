"""SMART App Launch v2 scopes: parsing, v1 equivalence, checks by context, and narrowing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.errors import InvalidInput
from medweave.security.scopes import OPERATIONS, Scope, ScopeSet, narrow, parse_scope

TYPES = ["Patient", "Observation", "Condition", "QuestionnaireResponse", "*"]
CONCRETE = [t for t in TYPES if t != "*"]
CONTEXTS = ["patient", "user", "system"]
OPS = list(OPERATIONS)

perms = st.sets(st.sampled_from("cruds"), min_size=1).map(lambda s: "".join(p for p in "cruds" if p in s))
resource_scope = st.builds(
    lambda c, t, p: f"{c}/{t}.{p}", st.sampled_from(CONTEXTS), st.sampled_from(TYPES), perms
)
v1_scope = st.builds(
    lambda c, t, p: f"{c}/{t}.{p}",
    st.sampled_from(CONTEXTS),
    st.sampled_from(TYPES),
    st.sampled_from(["read", "write", "*"]),
)
other_scope = st.sampled_from(
    ["openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access"]
)
scope_words = st.lists(st.one_of(resource_scope, v1_scope, other_scope), max_size=8)
scope_sets = scope_words.map(" ".join).map(ScopeSet.parse)
queries = st.tuples(st.sampled_from(CONCRETE), st.sampled_from(OPS), st.sampled_from([None, *CONTEXTS]))


def test_parse_the_examples_of_the_spec() -> None:
    scopes = ScopeSet.parse("openid fhirUser launch/patient patient/Observation.rs user/*.cruds")
    assert scopes.has("openid") and scopes.has("fhirUser") and scopes.has("launch/patient")
    assert not scopes.has("offline_access")
    assert scopes.resources == (Scope("patient", "Observation", "rs"), Scope("user", "*", "cruds"))
    assert str(scopes) == "fhirUser launch/patient openid patient/Observation.rs user/*.cruds"


def test_patient_observation_rs_reads_and_searches_observations_only() -> None:
    scopes = ScopeSet.parse("patient/Observation.rs")
    assert scopes.allows("Observation", "read") and scopes.allows("Observation", "search")
    for op in ("create", "update", "delete"):
        assert not scopes.allows("Observation", op)
    for op in OPS:
        assert not scopes.allows("Condition", op)
    assert scopes.allows("Observation", "read", context="patient")
    assert not scopes.allows("Observation", "read", context="user")


def test_contexts_for_says_which_restriction_applies() -> None:
    scopes = ScopeSet.parse("patient/*.rs user/Observation.r system/Condition.cruds")
    assert scopes.contexts_for("Observation", "read") == {"patient", "user"}
    assert scopes.contexts_for("Observation", "search") == {"patient"}
    assert scopes.contexts_for("Condition", "delete") == {"system"}
    assert scopes.contexts_for("Patient", "create") == frozenset()


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        ("patient/*.read", "patient/*.rs"),
        ("user/Observation.write", "user/Observation.cud"),
        ("system/*.*", "system/*.cruds"),
        ("patient/Condition.read patient/Condition.write", "patient/Condition.cruds"),
    ],
)
def test_v1_forms_map_to_v2(v1: str, v2: str) -> None:
    assert ScopeSet.parse(v1) == ScopeSet.parse(v2)
    assert str(ScopeSet.parse(v1)) == v2


def test_same_type_scopes_merge_in_canonical_order() -> None:
    assert (
        str(ScopeSet.parse("user/Patient.s user/Patient.c  user/Patient.r\topenid"))
        == "openid user/Patient.crs"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("patient/Observation.sr", "in that order"),
        ("patient/Observation.rr", "in that order"),
        ("patient/Observation.x", "cruds"),
        ("patient/Observation.", "unknown scope"),
        ("patient/Observation.r*", "cruds"),
        ("patient/Observation.READ", "unknown scope"),
        ("practitioner/Observation.rs", "unknown scope"),
        ("Patient/Observation.rs", "unknown scope"),
        ("patient/observation.rs", "unknown scope"),
        ("patient/Obs-ervation.rs", "unknown scope"),
        ("patient/Observation", "unknown scope"),
        ("patient/.rs", "unknown scope"),
        ("admin", "unknown scope"),
        ("launch/practitioner", "unknown scope"),
    ],
)
def test_invalid_scopes_raise_invalid_input(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        ScopeSet.parse(f"openid {text}")


def test_overlong_scope_string_is_refused() -> None:
    with pytest.raises(InvalidInput, match="longer than"):
        ScopeSet.parse("openid " * 1000)


def test_unknown_operation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        ScopeSet.parse("user/*.cruds").allows("Patient", "vread")


def test_granular_scopes_parse_but_grant_nothing() -> None:
    text = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    scopes = ScopeSet.parse(text)
    assert str(scopes) == text
    assert not scopes.allows("Observation", "read")
    assert narrow(scopes, ScopeSet.parse("patient/*.cruds")) == ScopeSet()
    assert narrow(ScopeSet.parse("patient/*.cruds"), scopes) == ScopeSet()


def test_narrow_keeps_only_what_both_grant() -> None:
    requested = ScopeSet.parse("openid fhirUser offline_access patient/*.cruds user/Observation.rs")
    allowed = ScopeSet.parse("openid fhirUser patient/Observation.rs patient/QuestionnaireResponse.cru")
    got = narrow(requested, allowed)
    assert str(got) == "fhirUser openid patient/Observation.rs patient/QuestionnaireResponse.cru"
    assert not got.allows("Observation", "read", context="user")  # contexts never cross


def test_narrow_a_specific_request_by_a_wildcard_role() -> None:
    got = narrow(ScopeSet.parse("user/Observation.cruds"), ScopeSet.parse("user/*.rs"))
    assert str(got) == "user/Observation.rs"


def test_parse_scope_returns_names_for_non_resource_scopes() -> None:
    assert parse_scope("launch/patient") == "launch/patient"
    assert parse_scope("system/*.rs") == Scope("system", "*", "rs")


@given(scope_sets)
def test_format_parse_round_trip(scopes: ScopeSet) -> None:
    assert ScopeSet.parse(str(scopes)) == scopes
    assert str(ScopeSet.parse(str(scopes))) == str(scopes)


@given(scope_words)
def test_order_and_duplicates_do_not_matter(words: list[str]) -> None:
    assert ScopeSet.parse(" ".join(words)) == ScopeSet.parse(" ".join(reversed(words + words)))


@given(scope_sets, scope_sets, queries)
def test_allows_is_monotone(a: ScopeSet, b: ScopeSet, query: tuple[str, str, str | None]) -> None:
    res_type, op, context = query
    if a.allows(res_type, op, context=context):
        assert (a | b).allows(res_type, op, context=context)
    assert a.contexts_for(res_type, op) <= (a | b).contexts_for(res_type, op)


@given(scope_sets, scope_sets, queries)
def test_narrow_is_exactly_the_intersection(
    a: ScopeSet, b: ScopeSet, query: tuple[str, str, str | None]
) -> None:
    res_type, op, context = query
    both = a.allows(res_type, op, context=context) and b.allows(res_type, op, context=context)
    if context is not None:
        assert narrow(a, b).allows(res_type, op, context=context) == both
    assert narrow(a, b).contexts_for(res_type, op) == a.contexts_for(res_type, op) & b.contexts_for(
        res_type, op
    )
    assert narrow(a, b).other == a.other & b.other


@given(st.sampled_from(CONTEXTS), st.sampled_from(TYPES), st.sampled_from(CONCRETE), st.sampled_from(OPS))
def test_v1_and_v2_grant_the_same(context: str, scope_type: str, res_type: str, op: str) -> None:
    for v1, v2 in (("read", "rs"), ("write", "cud"), ("*", "cruds")):
        old = ScopeSet.parse(f"{context}/{scope_type}.{v1}")
        new = ScopeSet.parse(f"{context}/{scope_type}.{v2}")
        assert old.allows(res_type, op) == new.allows(res_type, op)
        assert old.contexts_for(res_type, op) == new.contexts_for(res_type, op)


@given(st.text(max_size=60))
def test_parse_raises_only_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        ScopeSet.parse(text)
