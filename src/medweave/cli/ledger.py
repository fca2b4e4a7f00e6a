"""``medweave ledger``: the tamper-evident log, and offline checks anyone can run.

Exit status of the checks: 0 valid, 1 invalid, 2 unusable input (bad hex, unreadable file, a
malformed key). ``verify`` checks this server's own database; the ``verify-*`` commands need only
public data: hashes, notes, keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medweave.cli.context import fail, one_line_errors, record_service, settings
from medweave.config import Settings
from medweave.db import make_engine, write_tx
from medweave.ledger import selfcheck, store
from medweave.ledger.hashing import EMPTY_ROOT
from medweave.ledger.note import (
    MalformedNoteError,
    NoteError,
    Signer,
    generate,
    open_note,
    parse_skey,
    parse_vkey,
)
from medweave.ledger.receipt import Receipt
from medweave.ledger.receipt_check import check_receipt
from medweave.ledger.service import LedgerService
from medweave.ledger.verify import ProofError, verify_consistency, verify_inclusion
from medweave.security.crypto import write_secret_file
from medweave.web.app import build_ledger, ledger_chain

app = typer.Typer(no_args_is_help=True, help="The tamper-evident ledger: checkpoints, proofs, self-audit.")

VALID, INVALID, UNUSABLE = 0, 1, 2


def ledger_service(cfg: Settings | None = None) -> LedgerService:
    """The ledger as ``medweave serve`` builds it, from the same settings."""
    cfg = cfg or settings()
    return build_ledger(cfg, record_service(cfg))


def _hash(text: str, what: str) -> bytes:
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        raise fail(f"{what} is not hex", UNUSABLE) from None
    if len(value) != 32:
        raise fail(f"{what} must be 32 bytes (64 hex digits)", UNUSABLE)
    return value


def _proof(text: str) -> list[bytes]:
    return [_hash(part, "a proof hash") for part in text.split(",") if part.strip()]


def _size(value: int, what: str) -> int:
    if value < 0:
        raise fail(f"{what} must not be negative", UNUSABLE)
    return value


@app.command()
@one_line_errors
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", help="A signed checkpoint kept elsewhere (a witness's copy); repeatable."
    ),
) -> None:
    """Recompute the whole log from the database; exit 1 and name the first bad index if anything
    was edited, deleted, reordered or truncated."""
    cfg = settings()
    for secret in (
        cfg.effective_ledger_key_file,
        *([] if cfg.master_key else [cfg.effective_master_key_file]),
    ):
        if not secret.exists():  # never make new keys here: a verify with fresh keys proves nothing
            raise fail(f"{secret} is missing: run verify with this installation's keys", UNUSABLE)
    try:
        pinned = [path.read_text(encoding="utf-8") for path in checkpoint]
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"a --checkpoint file is unreadable: {exc}", UNUSABLE) from None
    ledger = ledger_service(cfg)
    report = selfcheck.check(
        ledger.engine,
        master=ledger.master,
        log=ledger.verifier,
        tag_key=ledger.tag_key,
        chain=ledger_chain(cfg),
        pinned=pinned,
    )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(
            f"{'valid' if report.ok else 'INVALID'}: {report.entries} entries, {report.checkpoints} "
            f"checkpoints, {report.unlinkable} unlinkable (erased), {report.queued_audit} audit rows and "
            f"{report.queued_versions} versions queued; {report.anchors} anchors, "
            f"{report.anchors_checked} checked on the chain"
        )
        if report.first_bad_index is not None:
            typer.echo(f"first bad index: {report.first_bad_index}")
        for problem in report.problems:
            typer.echo(f"  {problem}")
    raise typer.Exit(VALID if report.ok else INVALID)


@app.command()
@one_line_errors
def checkpoint() -> None:
    """Print the latest signed checkpoint note, with its cosignatures."""
    latest = ledger_service().latest()
    if latest is None:
        raise fail("the ledger has no checkpoint yet", INVALID)
    typer.echo(latest.note, nl=False)


@app.command()
@one_line_errors
def vkey() -> None:
    """Print the log's public key (C2SP vkey)."""
    typer.echo(ledger_service().vkey)


@app.command()
@one_line_errors
def sequence() -> None:
    """Commit everything waiting (audit rows, record versions) now, and sign a checkpoint."""
    typer.echo(f"sequenced {ledger_service().sequence_all()} entries")


@app.command("verify-inclusion")
def verify_inclusion_command(
    leaf_hash: str = typer.Option(..., "--leaf-hash", help="The leaf hash (hex)."),
    index: int = typer.Option(..., "--index", help="The leaf's index (0-based)."),
    size: int = typer.Option(..., "--size", help="The tree size the proof is for."),
    root: str = typer.Option(..., "--root", help="The root hash at that size (hex)."),
    proof: str = typer.Option(..., "--proof", help="The proof hashes, comma-separated hex; may be empty."),
) -> None:
    """Check an RFC 9162 inclusion proof."""
    leaf, want, hashes = _hash(leaf_hash, "--leaf-hash"), _hash(root, "--root"), _proof(proof)
    try:
        verify_inclusion(_size(index, "--index"), _size(size, "--size"), leaf, hashes, want)
    except ProofError as exc:
        typer.echo(f"invalid: {exc}")
        raise typer.Exit(INVALID) from None
    typer.echo("valid")


@app.command("verify-consistency")
def verify_consistency_command(
    old_size: int = typer.Option(..., "--old-size", help="The older tree size."),
    old_root: str = typer.Option(..., "--old-root", help="The older root (hex)."),
    size: int = typer.Option(..., "--size", help="The newer tree size."),
    root: str = typer.Option(..., "--root", help="The newer root (hex)."),
    proof: str = typer.Option(..., "--proof", help="The proof hashes, comma-separated hex; may be empty."),
) -> None:
    """Check an RFC 9162 consistency proof (from size 0: an empty proof and the empty root)."""
    old, new, hashes = _hash(old_root, "--old-root"), _hash(root, "--root"), _proof(proof)
    m, n = _size(old_size, "--old-size"), _size(size, "--size")
    try:
        if m == 0:  # every tree extends the empty one; RFC 9162 defines no proof for it
            if hashes or old != EMPTY_ROOT or n < 0:
                raise ProofError("from size 0 the proof is empty and the old root is the empty root")
        else:
            verify_consistency(m, n, hashes, old, new)
    except ProofError as exc:
        typer.echo(f"invalid: {exc}")
        raise typer.Exit(INVALID) from None
    typer.echo("valid")


@app.command("verify-note")
def verify_note_command(
    file: Path = typer.Argument(..., help="The signed note."),
    vkey: list[str] = typer.Option(..., "--vkey", help="A public key (C2SP vkey); repeat for more."),
) -> None:
    """Check a signed note (a checkpoint, say) against public keys: exit 0 if one of them signed it."""
    try:
        verifiers = [parse_vkey(v) for v in vkey]
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise fail(str(exc), UNUSABLE) from None
    try:
        note = open_note(text, verifiers)
    except MalformedNoteError as exc:
        raise fail(f"not a signed note: {exc}", UNUSABLE) from None
    except NoteError as exc:
        typer.echo(f"invalid: {exc}")
        raise typer.Exit(INVALID) from None
    names = ", ".join(sorted({s.name for s in note.sigs}))
    typer.echo(f"valid: signed by {names}")


@app.command("verify-receipt")
def verify_receipt_command(
    file: Path = typer.Argument(..., help="The receipt (a C2SP tlog-proof)."),
    vkey: str = typer.Option(..., "--vkey", help="The log's public key."),
    witness: list[str] = typer.Option(
        [], "--witness", help="A witness key that must have cosigned; repeatable."
    ),
) -> None:
    """Check a receipt offline: the log signed the checkpoint, the witnesses cosigned it, and the
    entry is in it."""
    try:
        log = parse_vkey(vkey)
        witnesses = [parse_vkey(w) for w in witness]
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise fail(str(exc), UNUSABLE) from None
    try:
        Receipt.parse(text)
    except NoteError as exc:
        raise fail(f"not a receipt (c2sp.org/tlog-proof): {exc}", UNUSABLE) from None
    try:
        checkpoint, entry = check_receipt(text, log=log, witnesses=witnesses)
    except (NoteError, ProofError) as exc:
        typer.echo(f"invalid: {exc}")
        raise typer.Exit(INVALID) from None
    kind = entry.split(b"\n", 1)[0].decode("ascii", "replace")
    typer.echo(f"valid: {kind} entry in {checkpoint.origin} at size {checkpoint.size}")


witness_app = typer.Typer(no_args_is_help=True, help="Cosign other logs' checkpoints (C2SP tlog-witness).")
app.add_typer(witness_app, name="witness")


def _witness_key(path: Path) -> Signer:
    try:
        signer = parse_skey(path.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise fail(f"witness key {path}: {exc}", UNUSABLE) from None
    if signer.kind != "cosignature":
        raise fail(f"witness key {path} is not a cosignature (type 0x04) key", UNUSABLE)
    return signer


@witness_app.command("keygen")
@one_line_errors
def witness_keygen(
    name: str = typer.Option(..., "--name", help="The witness's name, e.g. witness.clinic.example."),
    key: Path = typer.Option(..., "--key", help="Where to write the private key (0600)."),
) -> None:
    """Make a witness key (Ed25519 cosignature/v1); print its public vkey for logs to configure."""
    if key.exists():
        raise fail(f"{key} exists; a witness keeps its key", UNUSABLE)
    try:
        skey, vkey_text = generate(name, kind="cosignature")
    except NoteError as exc:
        raise fail(str(exc), UNUSABLE) from None
    write_secret_file(key, skey)
    typer.echo(vkey_text)


@witness_app.command("add-log")
@one_line_errors
def witness_add_log(
    vkey_text: str = typer.Argument(..., metavar="VKEY", help="The log's public key."),
) -> None:
    """Trust a log: this witness will cosign checkpoints of the origin the key names."""
    try:
        verifier = parse_vkey(vkey_text)
    except NoteError as exc:
        raise fail(str(exc), UNUSABLE) from None
    if verifier.kind != "ed25519":
        raise fail("a log signs its checkpoints with an Ed25519 note key (type 0x01)", UNUSABLE)
    cfg = settings()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(cfg.effective_database_url)
    with write_tx(engine) as conn:
        known = store.witness_log(conn, verifier.name)
        if known is not None and known.vkey != verifier.vkey:
            raise fail(f"{verifier.name} is already witnessed under another key", INVALID)
        added = store.add_witness_log(conn, origin=verifier.name, vkey=verifier.vkey)
    typer.echo(f"{'now witnessing' if added else 'already witnessing'} {verifier.name}")


@witness_app.command("serve")
@one_line_errors
def witness_serve(
    key: Path = typer.Option(..., "--key", help="The witness's private key (from witness keygen)."),
    port: int = typer.Option(..., "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
) -> None:
    """Serve POST /add-checkpoint for the logs added with add-log (state in this instance's database)."""
    import uvicorn

    from medweave.web.witness_app import create_witness_app

    signer = _witness_key(key)
    cfg = settings()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(cfg.effective_database_url)
    typer.echo(f"witness {signer.verifier().vkey} on http://{host}:{port}", err=True)
    uvicorn.run(create_witness_app(engine, signer), host=host, port=port, log_level="warning")
