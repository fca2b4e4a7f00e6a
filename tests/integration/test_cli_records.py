"""``medweave records ...`` and ``medweave demo seed`` against real SQLite in a temp data dir."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from medweave.cli.context import OPERATOR, record_service
from medweave.cli.main import app
from medweave.config import Settings
from medweave.db import make_engine, read_tx
from medweave.errors import Gone
from medweave.migrate import upgrade
from medweave.records.service import RecordService
from medweave.records.tables import patient_keys
from medweave.security.crypto import DecryptionFailed, MasterKey

FAMILY, GIVEN, MRN = "Quillfeatherby", "Zebulonqx", "MRN-7731-QZX"
PAT = "urn:uuid:11111111-1111-4111-8111-111111111111"
ORG = "urn:uuid:22222222-2222-4222-8222-222222222222"


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def service() -> RecordService:
    return record_service()


def _observation(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
        "subject": {"reference": subject},
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
        **extra,
    }


def _patient(family: str = FAMILY, given: str = GIVEN, mrn: str = MRN, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:example:mrn", "value": mrn}],
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1971-03-04",
        **extra,
    }


def transaction_bundle() -> dict[str, Any]:
    """A Synthea-like Bundle: urn:uuid references, an Organization and a Claim we do not store."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": PAT, "resource": _patient(), "request": {"method": "POST", "url": "Patient"}},
            {
                "fullUrl": ORG,
                "resource": {"resourceType": "Organization", "name": "General Hospital"},
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "resource": _observation(PAT, performer=[{"reference": ORG}]),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": _observation(
                    PAT, performer=[{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1"}]
                ),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {"resourceType": "Claim", "status": "active", "patient": {"reference": PAT}},
                "request": {"method": "POST", "url": "Claim"},
            },
        ],
    }


def write_ndjson(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources))
    return path


def ndjson_resources() -> list[dict[str, Any]]:
    return [
        _patient("Ndjsonfamily", "Ann", "MRN-2", id="nd-1"),
        _observation("Patient/nd-1", id="nd-obs-1"),
        _observation("Patient/nd-1"),  # no id: POSTed
    ]


def _search_total(res_type: str, **params: str) -> int:
    return int(service().search(principal=OPERATOR, res_type=res_type, params=list(params.items()))["total"])


def _assert_one_line_error(result: Any) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output


# -- import -------------------------------------------------------------------------------------


def test_import_transaction_bundle(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(transaction_bundle()))
    result = run("records", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 3 resources in 1 transaction(s)" in result.stdout
    assert "Organization" in result.stdout and "Claim" in result.stdout  # the skipped types
    assert _search_total("Patient", family=FAMILY) == 1
    assert _search_total("Observation") == 2
    obs = service().search(principal=OPERATOR, res_type="Observation", params=[])["entry"]
    performers = sorted(json.dumps(e["resource"]["performer"], sort_keys=True) for e in obs)
    assert performers == sorted(
        [
            json.dumps([{"display": "General Hospital", "type": "Organization"}], sort_keys=True),
            json.dumps(
                [
                    {
                        "display": "Practitioner (not imported)",
                        "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1"},
                        "type": "Practitioner",
                    }
                ],
                sort_keys=True,
            ),
        ]
    )


def test_import_ndjson(data_dir: Path, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "Patient.ndjson", ndjson_resources())
    result = run("records", "import", str(path))
    assert result.exit_code == 0, result.output
    svc = service()
    assert (
        svc.read(principal=OPERATOR, res_type="Patient", res_id="nd-1").body["name"][0]["family"]
        == "Ndjsonfamily"
    )
    assert svc.read(principal=OPERATOR, res_type="Observation", res_id="nd-obs-1").body["subject"] == {
        "reference": "Patient/nd-1"
    }
    assert _search_total("Observation", subject="Patient/nd-1") == 2


def test_import_folder_in_chunks(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "bundle.json").write_text(json.dumps(transaction_bundle()))
    many = [_patient("Chunkfamily", f"P{i}", f"M{i}", id=f"c-{i}") for i in range(7)]
    write_ndjson(folder / "more.ndjson", many)
    (folder / "README.txt").write_text("not FHIR; ignored")
    result = run("records", "import", str(folder), "--chunk-size", "3")
    assert result.exit_code == 0, result.output
    assert "imported 10 resources in 4 transaction(s) from 2 file(s)" in result.stdout
    assert _search_total("Patient") == 8


def test_import_of_a_file_that_is_not_json_stores_nothing(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_ndjson(folder / "a.ndjson", ndjson_resources())
    (folder / "b.json").write_text('{"resourceType": "Bundle", "type": "transaction", "entry": [')
    result = run("records", "import", str(folder))
    _assert_one_line_error(result)
    assert "b.json" in result.stderr and "not valid JSON" in result.stderr
    assert service().is_empty()


def test_import_of_an_invalid_resource_stores_nothing_of_its_transaction(
    data_dir: Path, tmp_path: Path
) -> None:
    bundle = transaction_bundle()
    del bundle["entry"][3]["resource"]["status"]  # Observation.status is required
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bundle))
    result = run("records", "import", str(path))
    _assert_one_line_error(result)
    assert "bad.json" in result.stderr
    assert service().is_empty()


def test_import_of_a_missing_path_fails_in_one_line(data_dir: Path, tmp_path: Path) -> None:
    _assert_one_line_error(run("records", "import", str(tmp_path / "nope.json")))


# -- export -------------------------------------------------------------------------------------


def _read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _strip_meta(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in r.items() if k != "meta"} for r in resources),
        key=lambda r: (r["resourceType"], r["id"]),
    )


def test_export_round_trip(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        run("records", "import", str(write_ndjson(tmp_path / "in.ndjson", ndjson_resources()))).exit_code == 0
    )
    out = tmp_path / "out" / "nd-1.ndjson"
    out.parent.mkdir()
    result = run("records", "export", "--patient", "nd-1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 3 resources" in result.stdout
    exported = _read_ndjson(out)
    assert [r["resourceType"] for r in exported].count("Observation") == 2
    assert out.stat().st_mode & 0o077 == 0
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left

    # Import the export into a second, empty store and export again: the same resources.
    second = tmp_path / "second"
    second.mkdir()
    monkeypatch.setenv("MEDWEAVE_DATA_DIR", str(second))
    engine = make_engine(Settings().effective_database_url)
    upgrade(engine)
    assert run("records", "import", str(out)).exit_code == 0
    again = tmp_path / "again.ndjson"
    assert run("records", "export", "--patient", "nd-1", "--out", str(again)).exit_code == 0
    assert _strip_meta(_read_ndjson(again)) == _strip_meta(exported)


def test_export_of_an_unknown_patient_fails_and_writes_nothing(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.ndjson"
    _assert_one_line_error(run("records", "export", "--patient", "nobody", "--out", str(out)))
    assert list(tmp_path.glob("*x.ndjson*")) == []


# -- erasure ------------------------------------------------------------------------------------


def _db_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data.glob("medweave.db*")))


def _import_two_patients(tmp_path: Path) -> str:
    other = [
        _patient("Keepfamily", "Kept", "MRN-KEEP", id="keep-1"),
        _observation("Patient/keep-1", id="keep-o"),
    ]
    assert run("records", "import", str(write_ndjson(tmp_path / "keep.ndjson", other))).exit_code == 0
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(transaction_bundle()))
    assert run("records", "import", str(path)).exit_code == 0
    hit = service().search(principal=OPERATOR, res_type="Patient", params=[("family", FAMILY)])
    return str(hit["entry"][0]["resource"]["id"])


def test_erase_patient_needs_yes(data_dir: Path, tmp_path: Path) -> None:
    patient_id = _import_two_patients(tmp_path)
    result = run("records", "erase-patient", patient_id)
    _assert_one_line_error(result)
    assert "--yes" in result.stderr
    assert service().read(principal=OPERATOR, res_type="Patient", res_id=patient_id).body is not None


def test_erase_patient_shreds_the_record(data_dir: Path, tmp_path: Path) -> None:
    patient_id = _import_two_patients(tmp_path)
    needles = [s.encode() for s in (FAMILY, GIVEN, MRN, FAMILY.lower(), GIVEN.lower(), MRN.lower())]
    before = _db_bytes(data_dir)
    assert any(n in before for n in needles), "the scan must see the plaintext index before erasure"
    obs_ids = [
        e["resource"]["id"]
        for e in service().search(principal=OPERATOR, res_type="Observation", params=[])["entry"]
    ]

    result = run("records", "erase-patient", patient_id, "--yes")
    assert result.exit_code == 0, result.output
    assert "3 resources shredded" in result.stdout  # Patient and its two Observations

    svc = service()
    for res_type, res_id in [("Patient", patient_id)] + [
        ("Observation", i) for i in obs_ids if i != "keep-o"
    ]:
        with pytest.raises(Gone) as caught:
            svc.read(principal=OPERATOR, res_type=res_type, res_id=res_id)
        assert caught.value.status == 410
    assert (
        svc.read(principal=OPERATOR, res_type="Patient", res_id="keep-1").body["name"][0]["family"]
        == "Keepfamily"
    )
    svc.engine.dispose()
    after = _db_bytes(data_dir)
    found = [n.decode() for n in needles if n in after]
    assert not found, f"plaintext of the erased patient left in the database files: {found}"
    assert b"Keepfamily" in after or b"keepfamily" in after  # the scan still sees other patients

    again = run("records", "erase-patient", patient_id, "--yes")
    _assert_one_line_error(again)


# -- master key ---------------------------------------------------------------------------------


def _key_file(data: Path) -> Path:
    return data / "secrets" / "master.key"


def _wrapped_keys() -> list[tuple[str, bytes]]:
    with read_tx(service().engine) as conn:
        rows = conn.execute(
            select(patient_keys.c.patient_id, patient_keys.c.wrapped_key).where(
                patient_keys.c.wrapped_key.is_not(None)
            )
        ).all()
    return [(r.patient_id, r.wrapped_key) for r in rows]


def test_rotate_master_key(data_dir: Path, tmp_path: Path) -> None:
    patient_id = _import_two_patients(tmp_path)
    old = MasterKey.from_b64(_key_file(data_dir).read_text())
    result = run("records", "rotate-master-key")
    assert result.exit_code == 0, result.output
    assert "2 patient data keys re-wrapped" in result.stdout
    new = MasterKey.from_b64(_key_file(data_dir).read_text())
    assert new.key != old.key
    assert not (data_dir / "secrets" / "master.key.next").exists()
    assert _key_file(data_dir).stat().st_mode & 0o077 == 0
    assert (
        service().read(principal=OPERATOR, res_type="Patient", res_id=patient_id).body["name"][0]["family"]
        == FAMILY
    )
    for pid, wrapped in _wrapped_keys():
        new.unwrap(wrapped, patient_id=pid)
        with pytest.raises(DecryptionFailed):
            old.unwrap(wrapped, patient_id=pid)
    stale = RecordService(engine=service().engine, master=old, base_url="http://x/fhir")
    with pytest.raises(DecryptionFailed):
        stale.read(principal=OPERATOR, res_type="Patient", res_id=patient_id)


def test_rotate_refuses_an_inline_master_key(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDWEAVE_MASTER_KEY", MasterKey.generate().to_b64())
    result = run("records", "rotate-master-key")
    _assert_one_line_error(result)
    assert "MEDWEAVE_MASTER_KEY" in result.stderr


def test_rotate_finishes_a_rotation_that_crashed_after_rewrapping(data_dir: Path, tmp_path: Path) -> None:
    patient_id = _import_two_patients(tmp_path)
    svc = service()
    half = MasterKey.generate()
    (data_dir / "secrets" / "master.key.next").write_text(half.to_b64() + "\n")
    svc.rotate_master_key(new=half)  # the crash: the database moved on, the files did not
    result = run("records", "rotate-master-key")
    assert result.exit_code == 0, result.output
    assert "finished it" in result.stdout
    assert (
        service().read(principal=OPERATOR, res_type="Patient", res_id=patient_id).body["name"][0]["family"]
        == FAMILY
    )
    assert not (data_dir / "secrets" / "master.key.next").exists()


def test_rotate_rolls_back_a_rotation_that_crashed_before_rewrapping(data_dir: Path, tmp_path: Path) -> None:
    patient_id = _import_two_patients(tmp_path)
    (data_dir / "secrets" / "master.key.next").write_text(MasterKey.generate().to_b64() + "\n")
    result = run("records", "rotate-master-key")
    assert result.exit_code == 0, result.output
    assert "rolled it back" in result.stdout
    assert (
        service().read(principal=OPERATOR, res_type="Patient", res_id=patient_id).body["name"][0]["family"]
        == FAMILY
    )


# -- demo -----------------------------------------------------------------------------------------


def test_demo_seed_imports_synthetic_patients(data_dir: Path) -> None:
    result = run("demo", "seed", "--patients", "1", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert _search_total("Patient") == 1
    assert _search_total("Observation") > 10
    assert _search_total("Encounter") > 0
    assert "skipped" in result.stdout
    again = run("demo", "seed", "--patients", "1", "--if-empty")
    assert again.exit_code == 0, again.output
    assert "no patients seeded" in again.stdout
    assert _search_total("Patient") == 1
    # `make run` prints the sign-ins every time; the password lives in a 0600 file, not the repo.
    password = (data_dir / "secrets" / "demo-password").read_text().strip()
    for out in (result.stdout, again.stdout, run("demo", "logins").stdout):
        assert password in out
        for username in ("clinician", "therapist", "labtech", "datascientist", "admin", "patient"):
            assert f"  {username} " in out
    assert _search_total("CareTeam", participant="Practitioner/demo-clinician", status="active") == 1
    # The clinician and therapist take video visits, so the demo can book one (once, not again).
    assert _search_total("Schedule", actor="Practitioner/demo-clinician") == 1
    assert _search_total("Schedule", actor="Practitioner/demo-therapist") == 1
    assert _search_total("Schedule") == 2


def test_rotate_master_key_moves_totp_secrets_too(data_dir: Path, tmp_path: Path) -> None:
    """Staff TOTP secrets are sealed under the master key: after a rotation they must still open."""
    from medweave.identity import IdentityService
    from medweave.security.totp import code_for

    engine = service().engine
    old = MasterKey.from_b64(_key_file(data_dir).read_text())
    identity = IdentityService(engine=engine, master=old)
    user = identity.create_user(
        username="dr.rotate", role="clinician", password="a long passphrase 4 rotation"
    )
    secret, _uri = identity.begin_totp_enrolment(user.id)
    assert identity.confirm_totp_enrolment(user.id, code_for(secret))

    result = run("records", "rotate-master-key")
    assert result.exit_code == 0, result.output
    new = MasterKey.from_b64(_key_file(data_dir).read_text())
    later = datetime.now(UTC) + timedelta(seconds=90)  # a fresh time step: codes are single-use
    fresh = IdentityService(engine=engine, master=new)
    login = fresh.authenticate(
        username="dr.rotate",
        password="a long passphrase 4 rotation",
        totp_code=code_for(secret, now=later),
        now=later,
    )
    assert login.ok, login.reason
