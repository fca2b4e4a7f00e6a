"""CDS Hooks 2.0 through the HTTP stack, with a model really trained, proposed and approved.

Contract: discovery; a call with prefetch; a call without prefetch (read from the store with the
fhirAuthorization token, as that user); 412 with neither; a card that names missing data instead
of a risk; feedback; JWT rejection (bad signature, audience, expiry, replay). Access: the service
answers only for patients the token's user may read; a data scientist sees models but never
charts; the clinician's chart shows the same card as an EHR gets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from pages_support import PASSWORD, Clinic, build_clinic, enrol, sign_in
from sqlalchemy import insert, select

from conftest import bearer, observation
from medweave.diagnostics import monitoring, training, workflow
from medweave.diagnostics.registry import Artifacts
from medweave.diagnostics.tables import ml_feedback, ml_predictions
from medweave.errors import NotFound
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet

ISSUER = "https://ehr.example.org"
KID = "ehr-key-1"
SERVICE = "framingham-coxnet"
AS_OF = "2026-06-01T09:00:00Z"


@pytest.fixture(scope="module")
def trained() -> tuple[training.TrainingResult, dict[str, Any], Artifacts]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "RESAMPLES", 100)  # the bootstrap has its own tests; this is the service
        result = training.train("framingham", "coxnet", seed=0, protocol="holdout")
        report, artifacts = workflow.package(result)
    return result, report, artifacts


@pytest.fixture(scope="module")
def ehr_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": KID, "alg": "ES384", "use": "sig"}]}


@pytest.fixture
def clinic(
    records: RecordService, tmp_path: Path, trained: Any, ehr_key: ec.EllipticCurvePrivateKey
) -> Clinic:
    clients = tmp_path / "cds-clients.json"
    clients.write_text(json.dumps([{"iss": ISSUER, "name": "Example EHR", "jwks": _jwks(ehr_key)}]))
    clinic = build_clinic(records, tmp_path, settings={"cds_clients_file": clients})
    noor = clinic.identity.create_user(username="noor", role="data_scientist", password=PASSWORD).id
    clinic.user_ids["noor"] = noor
    clinic.secrets["noor"] = enrol(clinic.identity, noor)
    operator = Principal.internal("test")
    for code, value, unit in (("8480-6", 142, "mm[Hg]"), ("8462-4", 88, "mm[Hg]"), ("2093-3", 231, "mg/dL"),
                              ("39156-5", 29.5, "kg/m2")):  # fmt: skip
        records.create(
            principal=operator,
            res_type="Observation",
            data=observation(clinic.patient_id, code, code, value, unit, "2026-05-20T09:00:00Z"),
        )
    return clinic


@pytest.fixture
def server(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as running:
        yield running


def _browser(clinic: Clinic, server: TestClient, name: str) -> TestClient:
    client = TestClient(clinic.app)
    client.portal = server.portal
    client.headers["x-csrf-token"] = sign_in(client, clinic, name)
    return client


def _propose(clinic: Clinic, trained: Any) -> str:
    _result, report, artifacts = trained
    registry = clinic.app.state.registry
    # The proposer is the data scientist, as the training job started from her page would be.
    noor = Principal(
        kind="user", subject=clinic.user_ids["noor"], scopes=ScopeSet.parse(""), role=Role.DATA_SCIENTIST
    )
    record = registry.propose(
        noor, name=SERVICE, report=report, code_version="test", intended_use="test use",
        out_of_scope="test out of scope", artifacts=artifacts,
    )  # fmt: skip
    return str(record.id)


def _approve(clinic: Clinic, server: TestClient, model_id: str) -> None:
    grey = _browser(clinic, server, "grey")
    page = grey.get(f"/ml/models/{model_id}").text
    assert "Approve for use" in page
    r = grey.post(
        f"/ml/models/{model_id}/decide",
        data={"csrf_token": grey.headers["x-csrf-token"], "action": "approve", "reason": "validated locally"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def _token(
    key: ec.EllipticCurvePrivateKey, *, aud: str, exp: int = 240, kid: str = KID, iat_shift: int = 0
) -> str:
    now = int(time.time()) + iat_shift
    claims = {"iss": ISSUER, "aud": aud, "iat": now, "exp": now + exp, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})


def _url(service: str = SERVICE) -> str:
    return f"http://testserver/cds-services/{service}"


def _call(server: TestClient, key: Any, body: dict[str, Any], *, token: str | None = None) -> Any:
    token = token or _token(key, aud=_url())
    return server.post(f"/cds-services/{SERVICE}", json=body, headers={"Authorization": f"Bearer {token}"})


def _request(patient_id: str, prefetch: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": patient_id, "userId": "Practitioner/x"},
        **extra,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def _prefetch(clinic: Clinic, discovery: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """What an EHR would prefetch for each template, read from our store as an operator."""
    operator = Principal.internal("test")
    out: dict[str, Any] = {}
    for key, template in discovery["services"][0]["prefetch"].items():
        filled = template.replace("{{context.patientId}}", patient_id)
        if key == "patient":
            out[key] = clinic.records.read(principal=operator, res_type="Patient", res_id=patient_id).body
            continue
        from urllib.parse import parse_qsl

        res_type, _, query = filled.partition("?")
        out[key] = clinic.records.search(principal=operator, res_type=res_type, params=parse_qsl(query))
    return out


def _user_token(clinic: Clinic, who: str, role: str, fhir_user: str | None) -> str:
    """A SMART access token of this server for a user, as an EHR would pass in fhirAuthorization."""
    claims = {"role": role, **({"fhir_user": fhir_user} if fhir_user else {})}
    header = bearer("user/*.rs", kind="user", subject=clinic.user_ids[who], **claims)
    return header["Authorization"].split()[1]


def _logged(clinic: Clinic) -> list[Any]:
    with clinic.records.engine.connect() as conn:
        return list(conn.execute(select(ml_predictions)))


@pytest.fixture
def served(clinic: Clinic, server: TestClient, trained: Any) -> str:
    model_id = _propose(clinic, trained)
    assert server.get("/cds-services").json() == {"services": []}  # proposed is not served
    _approve(clinic, server, model_id)
    return model_id


def test_discovery_lists_the_approved_model_with_prefetch_templates(server: TestClient, served: str) -> None:
    services = server.get("/cds-services").json()["services"]
    assert [(s["id"], s["hook"]) for s in services] == [(SERVICE, "patient-view")]
    prefetch = services[0]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert all("{{context.patientId}}" in t for t in prefetch.values())
    assert served in services[0]["description"]


def test_a_call_with_prefetch_gives_the_model_risk_with_set_explanation_and_card_link(
    clinic: Clinic, server: TestClient, served: str, trained: Any, ehr_key: Any
) -> None:
    result, _report, _artifacts = trained
    prefetch = _prefetch(clinic, server.get("/cds-services").json(), clinic.patient_id)
    r = _call(server, ehr_key, _request(clinic.patient_id, prefetch))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert "coronary heart disease" in card["summary"] and len(card["summary"]) <= 140
    assert "conformal prediction set" in card["detail"] and "Main contributions" in card["detail"]
    assert card["links"][0]["url"].endswith(f"/ml/models/{served}")
    assert card["indicator"] in ("info", "warning")
    [logged] = _logged(clinic)
    assert logged.id == card["uuid"] and logged.model_id == served and logged.channel == "cds-hooks"
    assert clinic.patient_id not in logged.subject  # a pseudonym, not the id
    features = json.loads(logged.features)
    age = features["num_age"]
    assert 40 <= age <= 42 and features["num_sbp"] == 142 and features["num_scl"] == 231
    row = np.array([[features[name] for name in result.model.features]])
    assert abs(logged.risk - float(result.model.risk(row)[0])) <= 1e-6  # ONNX served = native


def test_without_prefetch_the_store_is_read_as_the_token_user_and_audited(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    grey = _user_token(clinic, "grey", "clinician", f"Practitioner/{clinic.practitioner_id}")
    auth = {"access_token": grey, "token_type": "Bearer", "scope": "user/*.rs", "subject": "grey"}
    body = _request(clinic.patient_id, fhirServer="http://testserver/fhir", fhirAuthorization=auth)
    r = _call(server, ehr_key, body)
    assert r.status_code == 200, r.text
    assert "coronary heart disease" in r.json()["cards"][0]["summary"]
    with_prefetch = _call(
        server,
        ehr_key,
        _request(clinic.patient_id, _prefetch(clinic, server.get("/cds-services").json(), clinic.patient_id)),
    ).json()
    assert with_prefetch["cards"][0]["summary"] == r.json()["cards"][0]["summary"]
    trail = clinic.records.trail.audit
    assert trail is not None
    events = trail.for_patient(clinic.patient_id)
    assert any(
        (e.user_ref or "").endswith(clinic.practitioner_id) and e.interaction == "read" for e in events
    )


def test_no_prefetch_and_no_authorization_is_412(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    r = _call(server, ehr_key, _request(clinic.patient_id))
    assert r.status_code == 412
    assert r.json()["resourceType"] == "OperationOutcome"
    assert "patient" in r.text
    assert _logged(clinic) == []


def test_missing_data_gives_a_card_that_names_it_and_no_risk(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    prefetch = _prefetch(clinic, server.get("/cds-services").json(), clinic.other_id)  # Bob: no readings
    r = _call(server, ehr_key, _request(clinic.other_id, prefetch))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert "not assessed, missing" in card["summary"] and "%" not in card["summary"]
    assert "8480-6" in card["detail"] and "birth" in card["detail"].lower()
    assert _logged(clinic) == []


def test_feedback_records_accepted_and_overridden_cards(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    prefetch = _prefetch(clinic, server.get("/cds-services").json(), clinic.patient_id)
    card = _call(server, ehr_key, _request(clinic.patient_id, prefetch)).json()["cards"][0]
    url = _url() + "/feedback"
    headers = {"Authorization": f"Bearer {_token(ehr_key, aud=url)}"}
    body = {
        "feedback": [
            {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-06-01T09:05:00Z",
             "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "repeat reading due"}},
        ]
    }  # fmt: skip
    r = server.post(f"/cds-services/{SERVICE}/feedback", json=body, headers=headers)
    assert r.status_code == 200 and r.json() == {"stored": 1}
    with clinic.records.engine.connect() as conn:
        [row] = conn.execute(select(ml_feedback)).all()
    assert (row.card_id, row.outcome, row.model_id) == (card["uuid"], "overridden", served)
    assert json.loads(row.reason)["reason"]["code"] == "not-applicable"
    unknown = {
        "feedback": [
            {"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "2026-06-01T09:05:00Z"}
        ]
    }
    headers = {"Authorization": f"Bearer {_token(ehr_key, aud=url)}"}
    assert server.post(f"/cds-services/{SERVICE}/feedback", json=unknown, headers=headers).status_code == 404
    bad = {
        "feedback": [{"card": card["uuid"], "outcome": "ignored", "outcomeTimestamp": "2026-06-01T09:05:00Z"}]
    }
    headers = {"Authorization": f"Bearer {_token(ehr_key, aud=url)}"}
    assert server.post(f"/cds-services/{SERVICE}/feedback", json=bad, headers=headers).status_code == 400


def test_jwt_rejected_for_bad_signature_audience_expiry_and_replay(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    prefetch = _prefetch(clinic, server.get("/cds-services").json(), clinic.patient_id)
    body = _request(clinic.patient_id, prefetch)
    impostor = ec.generate_private_key(ec.SECP384R1())
    cases = {
        "no token": "",
        "bad signature": _token(impostor, aud=_url()),
        "wrong audience": _token(ehr_key, aud=_url("another-service")),
        "expired": _token(ehr_key, aud=_url(), iat_shift=-600),
    }
    for name, token in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = server.post(f"/cds-services/{SERVICE}", json=body, headers=headers)
        assert r.status_code == 401, name
        assert ("cards" not in r.text and token[:20] not in r.text.replace("Bearer", "")) or not token
    once = _token(ehr_key, aud=_url())
    assert _call(server, ehr_key, body, token=once).status_code == 200
    assert _call(server, ehr_key, body, token=once).status_code == 401  # replayed jti
    assert len(_logged(clinic)) == 1


def test_the_service_answers_only_for_patients_the_token_user_may_read(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    for who, role in (("grey", "clinician"), ("noor", "data_scientist")):
        fhir_user = f"Practitioner/{clinic.practitioner_id}" if who == "grey" else None
        token = _user_token(clinic, who, role, fhir_user)
        auth = {"access_token": token, "token_type": "Bearer", "scope": "user/*.rs", "subject": who}
        patient = clinic.other_id if who == "grey" else clinic.patient_id  # Bob is in nobody's care
        r = _call(
            server, ehr_key, _request(patient, fhirServer="http://testserver/fhir", fhirAuthorization=auth)
        )
        assert r.status_code in (403, 404), (who, r.status_code)
        assert "cards" not in r.json()
    assert _logged(clinic) == []


def test_the_chart_shows_the_same_card_and_a_data_scientist_never_sees_charts(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    prefetch = _prefetch(clinic, server.get("/cds-services").json(), clinic.patient_id)
    card = _call(server, ehr_key, _request(clinic.patient_id, prefetch)).json()["cards"][0]
    grey = _browser(clinic, server, "grey")
    chart = grey.get(f"/patients/{clinic.patient_id}").text
    assert "Decision support" in chart
    assert card["summary"] in chart.replace("&#39;", "'")
    assert [r.channel for r in _logged(clinic)] == ["cds-hooks", "chart"]
    noor = _browser(clinic, server, "noor")
    assert noor.get(f"/patients/{clinic.patient_id}").status_code == 404
    models = noor.get("/ml/models")
    assert models.status_code == 200 and SERVICE in models.text and "Liddell" not in models.text
    page = noor.get(f"/ml/models/{served}").text
    assert "Approve for use" not in page and "Reliability curve" in page and "Liddell" not in page
    r = noor.post(
        f"/ml/models/{served}/decide",
        data={"csrf_token": noor.headers["x-csrf-token"], "action": "retire", "reason": "mine"},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_a_data_scientist_downloads_a_de_identified_table_and_a_clinician_cannot(
    clinic: Clinic, server: TestClient
) -> None:
    noor = _browser(clinic, server, "noor")
    assert "Training table from this clinic" in noor.get("/ml/models").text
    form = {"csrf_token": noor.headers["x-csrf-token"], "spec": "framingham",
            "outcome_codes": "http://snomed.info/sct|53741008"}  # fmt: skip
    r = noor.post("/ml/extract", data=form)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    lines = r.text.splitlines()
    assert lines[0] == "pid,num_sbp,num_dbp,num_scl,num_age,num_bmi,fac_sex=2,outcome"
    assert len(lines) == 3  # Alice and Bob
    for secret in (clinic.patient_id, clinic.other_id, "Liddell", "Builder", "1985"):
        assert secret not in r.text
    assert "142" in r.text  # Alice's systolic pressure, under a pseudonym
    grey = _browser(clinic, server, "grey")
    form["csrf_token"] = grey.headers["x-csrf-token"]
    assert grey.post("/ml/extract", data=form).status_code == 404


def test_the_model_card_downloads_in_each_format_and_only_for_model_viewers(
    clinic: Clinic, server: TestClient, trained: Any
) -> None:
    model_id = _propose(clinic, trained)
    noor = _browser(clinic, server, "noor")
    md = noor.get(f"/ml/models/{model_id}/card")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith(f"# Model card: {SERVICE} (version 1)")
    both = noor.get(f"/ml/models/{model_id}/card?format=json").json()
    assert both["model_details"]["id"] == model_id and len(both["tripod_ai"]) == 52
    chai = noor.get(f"/ml/models/{model_id}/card?format=chai").json()
    assert chai["schema"]["name"] == "CHAI Applied Model Card"
    assert len(chai["hti1_source_attributes"]) == 31
    wrong = noor.get(f"/ml/models/{model_id}/card?format=xml")
    assert wrong.status_code == 400 and "md (the model card), json, or chai" in wrong.text
    alice = _browser(clinic, server, "alice")  # a patient: the registry pages are not hers
    assert alice.get(f"/ml/models/{model_id}/card").status_code == 404


def test_the_model_page_shows_drift_and_rolling_performance_once_outcomes_arrive(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    prefetch = _prefetch(clinic, server.get("/cds-services").json(), clinic.patient_id)
    assert _call(server, ehr_key, _request(clinic.patient_id, prefetch)).status_code == 200
    [first] = _logged(clinic)
    features = json.loads(first.features)
    rng = np.random.default_rng(3)
    start = first.at - timedelta(days=21)
    rows, outcomes = [], []
    for i in range(120):  # three weeks of a served population whose blood pressure climbs
        risk = float(rng.uniform(0.02, 0.6))
        shifted = {**features, "num_sbp": float(rng.normal(125 + 15 * (i // 40), 12))}
        at = start + timedelta(days=i // 6)
        rows.append({"id": f"card-{i}", "model_id": served, "subject": f"s{i}", "at": at,
                     "features": json.dumps(shifted), "risk": risk, "channel": "cds-hooks"})  # fmt: skip
        outcomes.append((f"card-{i}", int(rng.uniform() < risk)))
    with clinic.records.engine.begin() as conn:
        conn.execute(insert(ml_predictions), rows)
    assert monitoring.record_outcomes(clinic.records.engine, outcomes) == 120
    with pytest.raises(NotFound):
        monitoring.record_outcomes(clinic.records.engine, [("card-0", 0), ("nope", 1)])
    grey = _browser(clinic, server, "grey")
    page = grey.get(f"/ml/models/{served}").text
    assert "121 predictions served" in page and "120 with a known outcome" in page
    assert "Rolling performance over the latest 120 predictions" in page
    assert "significant shift" in page and 'id="drift-' in page


def test_bad_cds_input_is_a_400_operation_outcome_never_a_500(
    clinic: Clinic, server: TestClient, served: str, ehr_key: Any
) -> None:
    prefetch = _prefetch(clinic, server.get("/cds-services").json(), clinic.patient_id)
    key = next(k for k in prefetch if k != "patient")
    bodies = [
        _request(clinic.patient_id, {**prefetch, key: {"resourceType": "Bundle", "entry": 5}}),
        _request(
            clinic.patient_id, {**prefetch, key: {"resourceType": "Observation", "subject": "Patient/x"}}
        ),
        _request(
            clinic.patient_id, {**prefetch, key: {"resourceType": "Observation", "subject": {"reference": 7}}}
        ),
        _request(clinic.patient_id, {**prefetch, key: [1, 2]}),
        _request("p1,p2", prefetch),
        {**_request(clinic.patient_id, prefetch), "context": "Patient/1"},
        {**_request(clinic.patient_id, prefetch), "hook": "order-sign"},
    ]
    for body in bodies:
        r = _call(server, ehr_key, body)
        assert r.status_code in (400, 412), (r.status_code, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
    assert _logged(clinic) == []
    card = _call(server, ehr_key, _request(clinic.patient_id, prefetch)).json()["cards"][0]
    url = _url() + "/feedback"
    for item in (
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "9999-12-31T23:59:59-01:00"},
        {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-06-01T09:05:00"},
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-06-01T09:05:00Z",
         "overrideReason": "x" * 3000},
    ):  # fmt: skip
        headers = {"Authorization": f"Bearer {_token(ehr_key, aud=url)}"}
        r = server.post(f"/cds-services/{SERVICE}/feedback", json={"feedback": [item]}, headers=headers)
        assert r.status_code == 400, r.text
