"""Hostile and broken requests: each gets a 4xx OperationOutcome and stores nothing.

"Stores nothing" is checked on the system history: its total counts every version of every
resource, so any write, even of another type, would show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

FHIR_JSON = {"Content-Type": "application/fhir+json"}
PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Known"}]}


def _total(client) -> int:
    r = client.get("/fhir/_history", params={"_count": 0})
    assert r.status_code == 200, r.text
    return r.json()["total"]


@pytest.fixture
def seeded(client) -> Iterator[Any]:
    """A client with one Patient (version 1) and a check that nothing more gets stored."""
    assert client.put("/fhir/Patient/p1", json=PATIENT).status_code == 201
    before = _total(client)
    yield client
    assert _total(client) == before, "a refused request stored something"
    assert client.get("/fhir/Patient/p1").json()["meta"]["versionId"] == "1"


def _assert_refused(r, status: int | tuple[int, ...] | None = None) -> dict[str, Any]:
    allowed = (status,) if isinstance(status, int) else status
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if allowed:
        assert r.status_code in allowed, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"] and all(i["severity"] in ("error", "fatal") for i in body["issue"])
    return body


def _nest(levels: int) -> bytes:
    inner = b"[" * levels + b"]" * levels
    return b'{"resourceType": "Patient", "extension": ' + inner + b"}"


RAW_BODIES = {
    "malformed-json": (b'{"resourceType": "Patient", "name": [', 400),
    "trailing-garbage": (b'{"resourceType": "Patient"} x', 400),
    "empty-body": (b"", 400),
    "array": (b'[{"resourceType": "Patient"}]', 400),
    "string": (b'"Patient"', 400),
    "number": (b"42", 400),
    "null": (b"null", 400),
    "not-utf8": (b'{"resourceType": "Patient", "name": [{"family": "\xff\xfe"}]}', 400),
    "lone-surrogate": (b'{"resourceType": "Patient", "name": [{"family": "\\ud800"}]}', 400),
    "nul-in-string": (b'{"resourceType": "Patient", "name": [{"family": "a\\u0000b"}]}', 400),
    "control-char": (b'{"resourceType": "Patient", "name": [{"family": "a\\u0007b"}]}', 400),
    "infinite-number": (b'{"resourceType": "Patient", "multipleBirthInteger": 1e400}', 400),
    "nested-10000": (_nest(10_000), 400),
    "nested-100": (_nest(100), 400),
}


@pytest.mark.parametrize("name", RAW_BODIES)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_broken_json_bodies(seeded, name: str, method: str) -> None:
    raw, status = RAW_BODIES[name]
    if method == "POST":
        r = seeded.post("/fhir/Patient", content=raw, headers=FHIR_JSON)
    else:
        r = seeded.put("/fhir/Patient/p1", content=raw, headers=FHIR_JSON)
    _assert_refused(r, status)


INVALID_RESOURCES = {
    "wrong-type-for-url": ({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}, (400,)),
    "missing-resource-type": ({"name": [{"family": "X"}]}, (400,)),
    "unsupported-type": ({"resourceType": "Medication"}, (400,)),
    "unknown-element": ({"resourceType": "Patient", "nickname": "Bob"}, (400, 422)),
    "invalid-date": ({"resourceType": "Patient", "birthDate": "2019-13-45"}, (400, 422)),
    "invalid-datetime": ({"resourceType": "Patient", "deceasedDateTime": "yesterday"}, (400, 422)),
    "invalid-code": ({"resourceType": "Patient", "gender": "banana"}, (400, 422)),
    "wrong-primitive-type": ({"resourceType": "Patient", "active": "yes"}, (400, 422)),
    "integer-too-big": ({"resourceType": "Patient", "multipleBirthInteger": 2**40}, (400, 422)),
    "bad-reference": (
        {"resourceType": "Patient", "generalPractitioner": [{"reference": "not a reference"}]},
        (400, 422),
    ),
}


@pytest.mark.parametrize("name", INVALID_RESOURCES)
def test_invalid_resources_are_refused(seeded, name: str) -> None:
    resource, statuses = INVALID_RESOURCES[name]
    _assert_refused(seeded.post("/fhir/Patient", json=resource), statuses)
    _assert_refused(seeded.put("/fhir/Patient/p1", json=resource | {"id": "p1"}), statuses)


def test_body_of_10_mb_is_refused_with_413(seeded) -> None:
    big = {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": "<div>" + "x" * 10_000_000 + "</div>"},
    }
    raw = json.dumps(big).encode()
    assert len(raw) > 10_000_000
    _assert_refused(seeded.post("/fhir/Patient", content=raw, headers=FHIR_JSON), 413)
    _assert_refused(seeded.put("/fhir/Patient/p1", content=raw, headers=FHIR_JSON), 413)


def test_streamed_body_without_length_is_cut_off_with_413(seeded) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"resourceType": "Patient", "name": [{"family": "'
        for _ in range(160):
            yield b"x" * 65536
        yield b'"}]}'

    r = seeded.post("/fhir/Patient", content=chunks(), headers=FHIR_JSON)
    assert "content-length" not in r.request.headers
    _assert_refused(r, 413)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/fhir+xml", "application/x-www-form-urlencoded"],
)
def test_wrong_content_type_is_refused_with_415(seeded, content_type: str) -> None:
    raw = json.dumps(PATIENT).encode()
    _assert_refused(seeded.post("/fhir/Patient", content=raw, headers={"Content-Type": content_type}), 415)
    _assert_refused(seeded.put("/fhir/Patient/p1", content=raw, headers={"Content-Type": content_type}), 415)


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Patient/%2E%2E",  # ".." as an id
        "/fhir/Patient/%2E",
        "/fhir/Patient/a%2Fb",  # an encoded slash
        "/fhir/Patient/a/b",
        "/fhir/Patient/a%00b",
        "/fhir/Patient/a%20b",
        "/fhir/Patient/" + "x" * 65,
        "/fhir/Patient/%C3%A9",
    ],
)
def test_ids_with_path_or_forbidden_characters_are_refused(seeded, path: str) -> None:
    rid = path.removeprefix("/fhir/Patient/")
    _assert_refused(seeded.put(path, json=PATIENT | {"id": rid}))
    _assert_refused(seeded.get(path))
    _assert_refused(seeded.delete(path))


def test_an_id_with_inner_dots_is_a_valid_fhir_id_and_stays_literal(client) -> None:
    """R4 ids allow ``.`` anywhere (datatypes.html#id): ``a..b`` is an id, not a path; it is stored as is."""
    before = _total(client)
    r = client.put("/fhir/Patient/a..b", json={"resourceType": "Patient", "id": "a..b"})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/Patient/a..b/_history/1")
    assert client.get("/fhir/Patient/a..b").json()["id"] == "a..b"
    assert client.get("/fhir/Patient/b").status_code == 404
    assert _total(client) == before + 1


def test_id_in_body_must_match_the_url(seeded) -> None:
    _assert_refused(seeded.put("/fhir/Patient/p1", json=PATIENT | {"id": "other"}), 400)
    _assert_refused(seeded.put("/fhir/Patient/p2", json={"resourceType": "Patient"}), 400)


@pytest.mark.parametrize("etag", ["banana", 'W/"abc"', 'W/"-1"', "", 'W/""', 'W/"1.0"', "*x"])
def test_garbage_if_match_is_refused(seeded, etag: str) -> None:
    body = PATIENT | {"gender": "male"}
    _assert_refused(seeded.put("/fhir/Patient/p1", json=body, headers={"If-Match": etag}), 400)


def test_stale_if_match_is_412(seeded) -> None:
    body = PATIENT | {"gender": "male"}
    _assert_refused(seeded.put("/fhir/Patient/p1", json=body, headers={"If-Match": 'W/"2"'}), 412)
    _assert_refused(
        seeded.put("/fhir/Patient/p9", json=body | {"id": "p9"}, headers={"If-Match": 'W/"1"'}), 412
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/fhir/_history", {"_count": "abc"}),
        ("/fhir/_history", {"_count": "-1"}),
        ("/fhir/_history", {"_offset": "-5"}),
        ("/fhir/_history", {"_offset": str(10**30)}),
        ("/fhir/Patient/_history", {"_offset": str(2**63)}),
        ("/fhir/Patient/p1/_history", {"_since": "2020-13-01"}),
        ("/fhir/_history", {"_since": "yesterday"}),
        ("/fhir/_history", {"_since": "2020-01-01\x00"}),
        ("/fhir/Patient", {"name": "a\x00b"}),
        ("/fhir/Patient", {"birthdate": "2019-13-45"}),
        ("/fhir/Patient", {"_count": "many"}),
    ],
)
def test_bad_query_parameters_are_refused(seeded, path: str, params: dict[str, str]) -> None:
    _assert_refused(seeded.get(path, params=params), 400)


def test_search_by_post_refuses_bad_forms(seeded) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _assert_refused(seeded.post("/fhir/Patient/_search", content=b"name=%FF%FE", headers=form), 400)
    _assert_refused(seeded.post("/fhir/Patient/_search", content=b"name=a%00b", headers=form), 400)
    _assert_refused(seeded.post("/fhir/Patient/_search", content=b"{}", headers=FHIR_JSON), 415)
    r = seeded.post("/fhir/Patient/_search", content=b"family=known", headers=form)
    assert r.status_code == 200, r.text
    assert [e["resource"]["id"] for e in r.json()["entry"] if e["search"]["mode"] == "match"] == ["p1"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Banana"),
        ("GET", "/fhir/Banana/1"),
        ("POST", "/fhir/Medication"),
        ("PUT", "/fhir/Medication/1"),
        ("DELETE", "/fhir/Banana/1"),
        ("GET", "/fhir/Patient/nobody"),
        ("GET", "/fhir/Patient/p1/_history/2"),
        ("GET", "/fhir/Patient/p1/_history/x"),
        ("GET", "/fhir/Patient/nobody/$everything"),
        ("PATCH", "/fhir/Patient/p1"),
        ("GET", "/fhir/nowhere/at/all/really"),
    ],
)
def test_unknown_things_are_4xx_outcomes(seeded, method: str, path: str) -> None:
    r = seeded.request(method, path, json=PATIENT if method in ("POST", "PUT", "PATCH") else None)
    _assert_refused(r, (404, 405))
