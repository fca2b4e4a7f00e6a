"""``medweave ledger ...`` against real SQLite in a temp data dir: the CLI contract of issue 4
(exit 0 valid, 1 invalid, 2 unusable input) and receipts checked offline with public keys only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from medweave.cli.context import OPERATOR, record_service
from medweave.cli.ledger import ledger_service
from medweave.cli.main import app
from medweave.ledger import store
from medweave.ledger.checkpoint import Checkpoint
from medweave.ledger.note import generate


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def sealed(data_dir: Path) -> dict[str, Any]:
    """A patient with two versions, sequenced; returns what the checks need."""
    records = record_service()
    body = {"resourceType": "Patient", "name": [{"family": "Quillfeatherby"}]}
    pid = records.create(principal=OPERATOR, res_type="Patient", data=body).res_id
    records.update(
        principal=OPERATOR, res_type="Patient", res_id=pid, data={**body, "id": pid, "gender": "other"}
    )
    done = run("ledger", "sequence")
    assert done.exit_code == 0 and "sequenced" in done.output
    ledger = ledger_service()
    with ledger.engine.connect() as conn:
        entries = list(store.entries(conn))
    latest = ledger.latest()
    assert latest is not None
    return {"pid": pid, "ledger": ledger, "entries": entries, "latest": latest, "dir": data_dir}


def test_verify_passes_then_names_the_first_bad_index(sealed: dict[str, Any]) -> None:
    done = run("ledger", "verify")
    assert done.exit_code == 0 and done.output.startswith("valid"), done.output
    as_json = run("ledger", "verify", "--json")
    assert as_json.exit_code == 0 and '"ok": true' in as_json.output
    with sealed["ledger"].engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE idx = 2"))
    done = run("ledger", "verify")
    assert done.exit_code == 1 and "first bad index: 2" in done.output


def test_checkpoint_and_vkey_print_what_verify_note_accepts(sealed: dict[str, Any], tmp_path: Path) -> None:
    note = run("ledger", "checkpoint")
    vkey = run("ledger", "vkey").output.strip()
    assert (
        note.exit_code == 0
        and Checkpoint.parse(note.output.split("\n\n")[0] + "\n").size == sealed["latest"].size
    )
    path = tmp_path / "cp.txt"
    path.write_text(note.output)
    assert run("ledger", "verify-note", "--vkey", vkey, str(path)).exit_code == 0
    other = generate("someone.else/ledger")[1]
    assert run("ledger", "verify-note", "--vkey", other, str(path)).exit_code == 1
    path.write_text(note.output.replace(str(sealed["latest"].size), str(sealed["latest"].size + 1), 1))
    assert run("ledger", "verify-note", "--vkey", vkey, str(path)).exit_code == 1
    assert run("ledger", "verify-note", "--vkey", "not-a-key", str(path)).exit_code == 2
    assert run("ledger", "verify-note", "--vkey", vkey, str(tmp_path / "missing.txt")).exit_code == 2


def test_verify_inclusion_and_consistency(sealed: dict[str, Any]) -> None:
    ledger, entries, latest = sealed["ledger"], sealed["entries"], sealed["latest"]
    index = len(entries) // 2
    proof = ",".join(h.hex() for h in ledger.inclusion_proof(index=index, size=latest.size))
    args = ["--index", str(index), "--size", str(latest.size), "--root", latest.root.hex(), "--proof", proof]
    assert (
        run("ledger", "verify-inclusion", "--leaf-hash", entries[index].leaf_hash.hex(), *args).exit_code == 0
    )
    wrong = entries[index + 1].leaf_hash.hex()
    assert run("ledger", "verify-inclusion", "--leaf-hash", wrong, *args).exit_code == 1
    assert run("ledger", "verify-inclusion", "--leaf-hash", "zz", *args).exit_code == 2
    single = ["--index", "0", "--size", "1", "--root", entries[0].leaf_hash.hex(), "--proof", ""]
    assert (
        run("ledger", "verify-inclusion", "--leaf-hash", entries[0].leaf_hash.hex(), *single).exit_code == 0
    )
    # consistency from the empty tree, and between two published sizes
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    from_zero = [
        "--old-size",
        "0",
        "--old-root",
        empty,
        "--size",
        str(latest.size),
        "--root",
        latest.root.hex(),
    ]
    assert run("ledger", "verify-consistency", *from_zero, "--proof", "").exit_code == 0
    assert run("ledger", "verify-consistency", *from_zero, "--proof", empty).exit_code == 1


def test_receipts_verify_offline_with_public_keys_only(sealed: dict[str, Any], tmp_path: Path) -> None:
    ledger, pid = sealed["ledger"], sealed["pid"]
    receipt = ledger.receipt(kind="version", ref=f"Patient/{pid}/_history/2")
    assert pid not in receipt and "Quillfeatherby" not in receipt  # no PHI in a receipt
    path = tmp_path / "r.tlog-proof"
    path.write_text(receipt)
    vkey = ledger.vkey
    done = run("ledger", "verify-receipt", str(path), "--vkey", vkey)
    assert done.exit_code == 0 and "medweave-version/v1" in done.output, done.output
    witness = generate("witness.example", kind="cosignature")[1]
    assert run("ledger", "verify-receipt", str(path), "--vkey", vkey, "--witness", witness).exit_code == 1
    lines = receipt.split("\n")
    lines[2] = "index 0" if lines[2] != "index 0" else "index 1"  # claim another leaf
    path.write_text("\n".join(lines))
    assert run("ledger", "verify-receipt", str(path), "--vkey", vkey).exit_code == 1
    path.write_text("not a receipt")
    assert run("ledger", "verify-receipt", str(path), "--vkey", vkey).exit_code == 2
    assert run("ledger", "verify-receipt", str(path), "--vkey", "bad").exit_code == 2


def test_verify_without_this_installations_keys_is_unusable_input(data_dir: Path) -> None:
    done = run("ledger", "verify")
    assert done.exit_code == 2 and "missing" in done.output
    assert not (data_dir / "secrets" / "ledger.key").exists()  # it made no key of its own
