"""Every official R4 example of the supported types goes in through the API and comes back unchanged.

The examples come from the npm package ``hl7.fhir.r4.examples@4.0.1`` (``FHIR_EXAMPLES``). Each is
PUT under its own id, so the references between examples keep pointing at the right resources,
then read back and compared with what was sent, ignoring only the server-owned
``meta.versionId`` and ``meta.lastUpdated``. The one refusal allowed is an example that is not
valid R4 itself.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest

from conftest import FHIR_EXAMPLES
from medweave.records.fhir import SUPPORTED_TYPES

#: Examples of the package that break R4 themselves; the server must refuse them with a 4xx.
INVALID_EXAMPLES = {
    "Questionnaire-qs1.json": "items are missing the required linkId",
    "Observation-clinical-gender.json": "Observation.performer references an Encounter, not allowed there",
}
EXPECTED_TOTAL = 217


def _without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    meta = out.get("meta")
    if isinstance(meta, dict):
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if not meta:
            del out["meta"]
    return out


def _examples() -> list[tuple[str, dict[str, Any]]]:
    if not FHIR_EXAMPLES.is_dir():
        pytest.fail(
            f"the official examples are missing: {FHIR_EXAMPLES} (npm install hl7.fhir.r4.examples@4.0.1)"
        )
    out = []
    for path in sorted(FHIR_EXAMPLES.glob("*.json")):
        if path.name == "package.json" or path.name.startswith("."):
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("resourceType") in SUPPORTED_TYPES:
            out.append((path.name, data))
    return out


def test_official_examples_round_trip(client, capsys) -> None:
    examples = _examples()
    assert len(examples) == EXPECTED_TOTAL, f"expected {EXPECTED_TOTAL} examples, found {len(examples)}"
    passed: Counter[str] = Counter()
    rejected: list[str] = []
    failures: list[str] = []
    for name, sent in examples:
        rtype, rid = sent["resourceType"], sent["id"]
        r = client.put(
            f"/fhir/{rtype}/{rid}",
            content=json.dumps(sent),
            headers={"Content-Type": "application/fhir+json"},
        )
        if name in INVALID_EXAMPLES:
            body = r.json()
            if 400 <= r.status_code < 500 and body.get("resourceType") == "OperationOutcome":
                rejected.append(name)
            else:
                failures.append(
                    f"{name}: invalid example was not refused with a 4xx OperationOutcome ({r.status_code})"
                )
            continue
        if r.status_code != 201:
            failures.append(f"{name}: PUT answered {r.status_code}: {r.text[:300]}")
            continue
        got = client.get(f"/fhir/{rtype}/{rid}")
        if got.status_code != 200:
            failures.append(f"{name}: read answered {got.status_code}: {got.text[:300]}")
            continue
        back = got.json()
        if back.get("meta", {}).get("versionId") != "1":
            failures.append(f"{name}: read back version {back.get('meta')!r}, expected 1")
        elif _without_server_meta(back) != _without_server_meta(sent):
            failures.append(f"{name}: read back differs from what was sent")
        else:
            passed[rtype] += 1

    totals = Counter(data["resourceType"] for _, data in examples)
    with capsys.disabled():
        print(f"\nOfficial R4 examples round trip ({client.app.state.records.engine.dialect.name}):")
        print(f"  {'type':<24}{'passed':>8}{'of':>6}")
        for rtype in sorted(totals):
            print(f"  {rtype:<24}{passed[rtype]:>8}{totals[rtype]:>6}")
        print(f"  {'total':<24}{sum(passed.values()):>8}{sum(totals.values()):>6}")
        for name in rejected:
            print(f"  {name}: rejected (invalid example: {INVALID_EXAMPLES[name]})")
        for line in failures:
            print(f"  FAILED {line}")
    assert not failures, "\n".join(failures)
    assert sorted(rejected) == sorted(INVALID_EXAMPLES)
    assert sum(passed.values()) == EXPECTED_TOTAL - len(INVALID_EXAMPLES)
    # Everything that passed is really stored: the type histories add up to the passed count.
    stored = sum(client.get(f"/fhir/{t}/_history", params={"_count": 0}).json()["total"] for t in totals)
    assert stored == sum(passed.values())
