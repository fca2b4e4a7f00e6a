"""Our log as a tlog-witness client: ask each configured witness to cosign the latest checkpoint.

For each witness, the request starts from the size it last cosigned for us (0 at first) and
carries the consistency proof from there. A 409 tells us the size the witness holds: we note it
and ask once more from there. A 200 carries cosignature lines, which are checked against the
witness's key before they are stored. A checkpoint counts as witnessed once ``quorum`` witnesses
have cosigned it. Witnesses are configured as ``URL VKEY`` pairs (``MEDWEAVE_LEDGER_WITNESSES``).

``Cosigner`` asks them on a schedule: a witness that failed or refused is left alone for a while
(5 s, doubling up to 5 minutes, reset by its next success), so a witness that is down costs one
timeout per wait instead of one per batch, and the others are asked as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from medweave.db import read_tx, write_tx
from medweave.errors import ConfigurationError
from medweave.ledger import store
from medweave.ledger.checkpoint import verify_cosignature
from medweave.ledger.note import NoteError, Verifier, parse_signature_line, parse_vkey, split_signatures
from medweave.ledger.service import LedgerService
from medweave.ledger.witness_protocol import (
    PATH,
    AddCheckpoint,
    ProtocolError,
    parse_cosignatures,
    parse_size,
)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Witness:
    url: str  # the submission prefix; requests go to <url>/add-checkpoint
    verifier: Verifier  # its cosignature (type 0x04) key

    @property
    def name(self) -> str:
        return self.verifier.name


def parse_witnesses(text: str) -> list[Witness]:
    """``URL VKEY`` pairs, separated by ``;`` or newlines (the ``MEDWEAVE_LEDGER_WITNESSES`` form)."""
    found = []
    for item in text.replace("\n", ";").split(";"):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://")):
            raise ConfigurationError(f"a witness is 'URL VKEY', not {item.strip()!r}")
        try:
            verifier = parse_vkey(parts[1])
        except NoteError as exc:
            raise ConfigurationError(f"witness key {parts[1]!r}: {exc}") from None
        if verifier.kind != "cosignature":
            raise ConfigurationError(f"witness key of {verifier.name} is not a cosignature (type 0x04) key")
        found.append(Witness(parts[0].rstrip("/"), verifier))
    return found


def request_cosignatures(
    ledger: LedgerService, witnesses: list[Witness], *, client: httpx.Client | None = None
) -> dict[str, str]:
    """Ask each witness that has not yet cosigned the latest checkpoint; ``{name: outcome}``."""
    latest = ledger.latest()
    if latest is None:
        return {}
    own = client or httpx.Client(timeout=10)
    outcomes = {}
    try:
        for witness in witnesses:
            if witness.name in latest.witnesses:
                outcomes[witness.name] = "already"
                continue
            try:
                outcomes[witness.name] = _ask(ledger, witness, latest.size, own)
            except (httpx.HTTPError, ProtocolError, NoteError) as exc:
                _log.warning("witness %s: %s", witness.name, type(exc).__name__)
                outcomes[witness.name] = f"failed: {exc}"
    finally:
        if client is None:
            own.close()
    return outcomes


def _ask(ledger: LedgerService, witness: Witness, size: int, client: httpx.Client) -> str:
    with read_tx(ledger.engine) as conn:
        old = store.witnessed_size(conn, witness.name)
        found = store.checkpoint(conn, size)
    if found is None:
        return "failed: no such checkpoint"
    for _ in range(2):
        if old > size:
            return f"failed: the witness holds size {old}, beyond ours ({size})"
        proof = ledger.consistency_proof(old=old, new=size) if 0 < old < size else []
        body = AddCheckpoint(old, tuple(proof), found.note).text()
        response = client.post(witness.url + PATH, content=body.encode())
        if response.status_code == 409 and response.headers.get("content-type", "").startswith(
            "text/x.tlog.size"
        ):
            old = parse_size(response.text)
            with write_tx(ledger.engine) as conn:
                store.set_witnessed_size(conn, witness.name, old)
            continue
        if response.status_code != 200:
            return f"refused: {response.status_code} {response.text.strip()[:200]}"
        text = split_signatures(found.note)[0]
        key = (witness.verifier.name, witness.verifier.key_id)
        lines = [
            s
            for s in map(parse_signature_line, parse_cosignatures(response.text))
            if (s.name, s.key_id) == key
        ]
        if not lines:
            return "failed: no cosignature by the witness's key"
        # A cosignature dated in the future (beyond a few minutes of clock skew) is refused.
        timestamp = verify_cosignature(text, lines[0], witness.verifier, not_after=int(time.time()) + 300)
        with write_tx(ledger.engine) as conn:
            store.add_cosignature(
                conn, size=size, witness=witness.name, line=lines[0].line(), timestamp=timestamp
            )
            store.set_witnessed_size(conn, witness.name, size)
        return "cosigned"
    return "failed: the witness keeps moving"


@dataclass
class Cosigner:
    """``request_cosignatures`` with a back-off per witness; call it after each signed batch."""

    ledger: LedgerService
    witnesses: list[Witness]
    first: float = 5.0  # seconds to wait after a first failure
    most: float = 300.0  # the longest wait
    clock: Callable[[], float] = time.monotonic
    client: httpx.Client | None = None
    _delay: dict[str, float] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict)

    def __call__(self) -> dict[str, str]:
        now = self.clock()
        due = [w for w in self.witnesses if self._next.get(w.name, now) <= now]
        outcomes = request_cosignatures(self.ledger, due, client=self.client) if due else {}
        for name, outcome in outcomes.items():
            if outcome.startswith(("failed", "refused")):
                delay = min(self.most, self._delay[name] * 2) if name in self._delay else self.first
                self._delay[name], self._next[name] = delay, now + delay
            else:
                self._delay.pop(name, None)
                self._next.pop(name, None)
        for w in self.witnesses:
            if w.name not in outcomes:
                outcomes[w.name] = f"waiting: asked again in {self._next[w.name] - now:.0f} s"
        return outcomes
