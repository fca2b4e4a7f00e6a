"""Search semantics of http://hl7.org/fhir/R4/search.html, table-driven, on SQLite and PostgreSQL.

Resources are written straight into ``resources`` + ``search_index`` (via ``replace_index``).
Expected id sets were worked out by hand from the spec's definitions, not by running the code.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, text

from medweave.db import make_engine, metadata, read_tx, write_tx
from medweave.errors import InvalidInput
from medweave.records import search
from medweave.records.indexing import extract_index
from medweave.records.searchparse import parse_search
from medweave.records.tables import resources

NOW = datetime(2020, 1, 1, tzinfo=UTC)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


PATIENTS = [
    (
        {
            "id": "p1",
            "active": True,
            "name": [{"family": "Chalmers", "given": ["Peter"]}],
            "gender": "male",
            "birthDate": "1974-12-25",
            "identifier": [{"system": "urn:mrn", "value": "123"}],
            "telecom": [{"system": "email", "value": "peter@x.org"}],
            "address": [{"city": "Zürich"}],
        },
        "2024-01-10T12:00:00",
    ),
    (
        {
            "id": "p2",
            "name": [{"family": "Müller", "given": ["Anna", "Anna,Maria"]}],
            "gender": "female",
            "birthDate": "1980",
            "identifier": [{"system": "urn:other", "value": "123"}],
            "telecom": [{"system": "phone", "value": "555-1234"}],
            "deceasedDateTime": "2020-01-01",
        },
        "2024-01-11T08:00:00",
    ),
    (
        {
            "id": "p3",
            "name": [{"family": "Chalmerson", "given": ["Jürgen"]}],
            "gender": "other",
            "birthDate": "1974-12",
            "identifier": [{"value": "123"}],
            "address": [{"city": "Zurich"}],
        },
        "2024-02-01T00:00:00",
    ),
    ({"id": "p5", "name": [{"family": "Ødegård", "given": ["Zoë"]}]}, "2024-03-01T00:00:00"),
]
DELETED = (
    {"id": "p4", "name": [{"family": "Smith"}], "gender": "male", "birthDate": "1974"},
    "2024-01-01T00:00:00",
)

OBSERVATIONS = [
    {
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}], "text": "Body Weight"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2016-03-28",
        "valueQuantity": {"value": 185, "unit": "lbs", "system": UCUM, "code": "[lb_av]"},
    },
    {
        "id": "o2",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": "http://example.org/fhir/Patient/p2"},
        "effectivePeriod": {"start": "2016-03-01T10:00:00Z", "end": "2016-03-01T11:00:00Z"},
        "valueQuantity": {"value": 72, "unit": "beats/min", "system": UCUM, "code": "/min"},
    },
    {
        "id": "o3",
        "status": "preliminary",
        "code": {"coding": [{"code": "local-1"}]},
        "subject": {"reference": "Group/g1"},
        "effectivePeriod": {"start": "2016-03-29"},
        "valueQuantity": {"value": 5.4, "unit": "mg"},
    },
    {
        "id": "o4",
        "status": "cancelled",
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1/_history/2"},
        "effectiveDateTime": "2017",
    },
]
QUESTIONNAIRES = [
    {"id": "q1", "status": "active", "url": "http://example.org/q1"},
    {"id": "q2", "status": "active", "url": "http://example.org/q2"},
]


def _store(engine: Engine) -> None:
    rows = [("Patient", r, t, False) for r, t in PATIENTS] + [("Patient", DELETED[0], DELETED[1], True)]
    rows += [("Observation", r, "2024-01-01T00:00:00", False) for r in OBSERVATIONS]
    rows += [("Questionnaire", r, "2024-01-01T00:00:00", False) for r in QUESTIONNAIRES]
    with write_tx(engine) as conn:
        for res_type, body, updated, deleted in rows:
            resource = {"resourceType": res_type, **body}
            conn.execute(
                insert(resources).values(
                    res_type=res_type,
                    res_id=body["id"],
                    version_id=1,
                    last_updated=_t(updated),
                    deleted=deleted,
                    body=b"{}",
                )
            )
            search.replace_index(
                conn, res_type=res_type, res_id=body["id"], patient_id=None, entries=extract_index(resource)
            )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('search') / 'search.db'}")
        metadata.create_all(eng)
        _store(eng)
        yield eng
        eng.dispose()
        return
    url = os.environ.get("MEDWEAVE_TEST_POSTGRES")
    if not url:
        pytest.skip("MEDWEAVE_TEST_POSTGRES is not set")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"search_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        metadata.create_all(eng)
        _store(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _ids(engine: Engine, res_type: str, query: str) -> list[str]:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")] if query else []
    req = parse_search(res_type, pairs)  # type: ignore[arg-type]
    assert req.unknown == []
    with read_tx(engine) as conn:
        return [i for _, i in search.page(conn, req, 0, 100, now=NOW)]


CASES = [
    # string: starts-with, case- and accent-insensitive; :exact; :contains; escaping
    ("Patient", "name=chal", {"p1", "p3"}),
    ("Patient", "family=Chalmers", {"p1", "p3"}),
    ("Patient", "family:exact=Chalmers", {"p1"}),
    ("Patient", "family:exact=chalmers", set()),
    ("Patient", "family:contains=ALM", {"p1", "p3"}),
    ("Patient", "family=muller", {"p2"}),
    ("Patient", "given=jurgen", {"p3"}),
    ("Patient", "given=zoe", {"p5"}),
    ("Patient", "address-city=zurich", {"p1", "p3"}),
    ("Patient", "address-city:exact=Zürich", {"p1"}),
    ("Patient", "given=anna\\,m", {"p2"}),
    ("Patient", "given=anna\\,x", set()),
    ("Patient", "given=peter,zoe", {"p1", "p5"}),
    ("Patient", "family=chal&given=jur", {"p3"}),
    # token
    ("Patient", "gender=male", {"p1"}),
    ("Patient", "gender=male,female", {"p1", "p2"}),
    ("Patient", "gender:not=male", {"p2", "p3", "p5"}),
    ("Patient", "identifier=123", {"p1", "p2", "p3"}),
    ("Patient", "identifier=urn:mrn|123", {"p1"}),
    ("Patient", "identifier=urn:mrn|", {"p1"}),
    ("Patient", "identifier=|123", {"p3"}),
    ("Patient", "email=peter@x.org", {"p1"}),
    ("Patient", "phone=555-1234", {"p2"}),
    ("Patient", "email=555-1234", set()),
    ("Patient", "active=true", {"p1"}),
    ("Patient", "deceased=true", {"p2"}),
    ("Patient", "_id=p1,p3,p4", {"p1", "p3"}),
    ("Observation", "code=http://loinc.org|29463-7", {"o1", "o4"}),
    ("Observation", "code=29463-7", {"o1", "o4"}),
    ("Observation", "code=|local-1", {"o3"}),
    ("Observation", "code:text=body", {"o1"}),
    ("Observation", "code:text=HEART", {"o2"}),
    ("Observation", "code:not=http://loinc.org|29463-7", {"o2", "o3"}),
    ("Observation", "status=final", {"o1", "o2"}),
    # date: o1 [03-28, 03-29), o2 [03-01T10:00, 03-01T11:00:01), o3 [03-29, inf), o4 [2017, 2018)
    ("Observation", "date=2016-03", {"o1", "o2"}),
    ("Observation", "date=eq2016-03", {"o1", "o2"}),
    ("Observation", "date=ne2016-03", {"o3", "o4"}),
    ("Observation", "date=gt2016-03", {"o3", "o4"}),
    ("Observation", "date=lt2016-03-28", {"o2"}),
    ("Observation", "date=ge2016-03-28", {"o1", "o3", "o4"}),
    ("Observation", "date=le2016-03-28", {"o1", "o2"}),
    ("Observation", "date=sa2016-03-28", {"o3", "o4"}),
    ("Observation", "date=eb2016-03-28", {"o2"}),
    ("Observation", "date=ap2016-02-20", {"o1", "o2", "o3"}),
    ("Observation", "date=2016-03-01", {"o2"}),
    ("Observation", "date=2016-03-01T10:30", set()),
    ("Observation", "date=2016-03-28,2017", {"o1", "o4"}),
    ("Observation", "date=ge2016-03-01&date=lt2016-03-29", {"o1", "o2"}),
    ("Patient", "birthdate=1974", {"p1", "p3"}),
    ("Patient", "birthdate=1974-12-25", {"p1"}),
    ("Patient", "birthdate=ge1980", {"p2"}),
    ("Patient", "birthdate:missing=true", {"p5"}),
    ("Patient", "birthdate:missing=false", {"p1", "p2", "p3"}),
    ("Patient", "_lastUpdated=2024-01", {"p1", "p2"}),
    ("Patient", "_lastUpdated=gt2024-01", {"p3", "p5"}),
    ("Patient", "_lastUpdated=lt2024-01-11", {"p1"}),
    ("Patient", "_lastUpdated=le2024-01-11", {"p1", "p2"}),
    ("Patient", "_lastUpdated=ge2024-02-01", {"p3", "p5"}),
    ("Patient", "_lastUpdated=ne2024-01", {"p3", "p5"}),
    # quantity: o1 185 lbs, o2 72 /min, o3 5.4 mg (no code), o4 none
    ("Observation", "value-quantity=185", {"o1"}),
    ("Observation", "value-quantity=185|http://unitsofmeasure.org|[lb_av]", {"o1"}),
    ("Observation", "value-quantity=185||lbs", {"o1"}),
    ("Observation", "value-quantity=185||[lb_av]", {"o1"}),
    ("Observation", "value-quantity=185|http://other|[lb_av]", set()),
    ("Observation", "value-quantity=5.4||mg", {"o3"}),
    ("Observation", "value-quantity=5", {"o3"}),
    ("Observation", "value-quantity=5.40", {"o3"}),
    ("Observation", "value-quantity=5.41", set()),
    ("Observation", "value-quantity=gt72", {"o1"}),
    ("Observation", "value-quantity=ge72", {"o1", "o2"}),
    ("Observation", "value-quantity=lt72", {"o3"}),
    ("Observation", "value-quantity=le72", {"o2", "o3"}),
    ("Observation", "value-quantity=ne185", {"o2", "o3"}),
    ("Observation", "value-quantity=ap70", {"o2"}),
    ("Observation", "value-quantity=sa72", {"o1"}),
    ("Observation", "value-quantity=eb72", {"o3"}),
    ("Observation", "value-quantity:missing=true", {"o4"}),
    # reference
    ("Observation", "subject=Patient/p1", {"o1", "o4"}),
    ("Observation", "subject=p1", {"o1", "o4"}),
    ("Observation", "subject=http://example.org/fhir/Patient/p2", {"o2"}),
    ("Observation", "subject=Patient/p2", {"o2"}),
    ("Observation", "subject:Patient=p2", {"o2"}),
    ("Observation", "subject=Group/g1", {"o3"}),
    ("Observation", "subject:Group=g1", {"o3"}),
    ("Observation", "patient=g1", set()),
    ("Observation", "patient=p1", {"o1", "o4"}),
    ("Observation", "patient:missing=true", {"o3"}),
    # uri
    ("Questionnaire", "url=http://example.org/q1", {"q1"}),
    ("Questionnaire", "url=http://example.org/q", set()),
    ("Patient", "", {"p1", "p2", "p3", "p5"}),
]


@pytest.mark.parametrize(("res_type", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES])
def test_search(engine: Engine, res_type: str, query: str, expected: set[str]) -> None:
    assert set(_ids(engine, res_type, query)) == expected


@pytest.mark.parametrize(
    ("query", "order"),
    [
        ("_sort=family", ["p1", "p3", "p2", "p5"]),
        ("_sort=birthdate", ["p3", "p1", "p2", "p5"]),
        ("_sort=-birthdate", ["p2", "p3", "p1", "p5"]),
        ("_sort=-_lastUpdated", ["p5", "p3", "p2", "p1"]),
        ("_sort=gender,-_id", ["p2", "p1", "p3", "p5"]),
    ],
)
def test_sort(engine: Engine, query: str, order: list[str]) -> None:
    assert _ids(engine, "Patient", query) == order


def test_count_and_paging(engine: Engine) -> None:
    req = parse_search("Patient", [("_sort", "_id")])
    with read_tx(engine) as conn:
        assert search.count_matches(conn, req) == 4
        assert search.page(conn, req, 1, 2) == [("Patient", "p2"), ("Patient", "p3")]


def test_include_and_revinclude(engine: Engine) -> None:
    obs = [("Observation", o["id"]) for o in OBSERVATIONS]
    with read_tx(engine) as conn:
        req = parse_search("Observation", [("_include", "Observation:subject")])
        assert set(search.resolve_includes(conn, req, obs)) == {("Patient", "p1"), ("Patient", "p2")}
        req = parse_search("Observation", [("_include", "Observation:subject:Group")])
        assert search.resolve_includes(conn, req, obs) == []  # g1 is not stored
        req = parse_search("Patient", [("_revinclude", "Observation:subject")])
        keys = [("Patient", "p1"), ("Patient", "p2"), ("Patient", "p3")]
        found = search.resolve_revincludes(conn, req, keys)
        assert set(found) == {("Observation", "o1"), ("Observation", "o2"), ("Observation", "o4")}


def test_replace_and_delete_index(engine: Engine) -> None:
    with write_tx(engine) as conn:
        search.replace_index(
            conn,
            res_type="Questionnaire",
            res_id="q2",
            patient_id=None,
            entries=extract_index(
                {"resourceType": "Questionnaire", "id": "q2", "url": "http://example.org/q3"}
            ),
        )
    assert _ids(engine, "Questionnaire", "url=http://example.org/q3") == ["q2"]
    with write_tx(engine) as conn:
        search.delete_index(conn, res_type="Questionnaire", res_id="q2")
    assert _ids(engine, "Questionnaire", "url=http://example.org/q3") == []
    assert _ids(engine, "Questionnaire", "url:missing=true") == ["q2"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(
        ["date", "value-quantity", "code", "code:text", "subject", "_lastUpdated", "status:not", "_id"]
    ),
    value=st.text(alphabet="0123456789.-+eE|:TZ,\\abcglsp/Patient", min_size=1, max_size=25),
)
def test_any_parsed_request_runs(engine: Engine, name: str, value: str) -> None:
    try:
        req = parse_search("Observation", [(name, value), ("_sort", "-date,value-quantity")])
    except InvalidInput:
        return
    with read_tx(engine) as conn:
        assert search.count_matches(conn, req, now=NOW) >= 0
        search.page(conn, req, 0, 5, now=NOW)
