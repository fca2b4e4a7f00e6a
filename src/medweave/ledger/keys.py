"""The log's signing key: a C2SP skey in a file of its own, made (0600) on first use."""

from __future__ import annotations

from pathlib import Path

from medweave.errors import ConfigurationError
from medweave.ledger.note import InvalidKeyError, Signer, generate, parse_skey
from medweave.security.crypto import write_secret_file


def load_or_create_log_key(path: Path, *, origin: str) -> Signer:
    """The log key in ``path``; a new Ed25519 key named ``origin`` if the file does not exist.

    The key's name is the log's origin line: an existing file keeps its own name, so moving the
    server to another URL does not change the log's identity."""
    if not path.exists():
        skey, _vkey = generate(origin)
        write_secret_file(path, skey)
    try:
        return parse_skey(path.read_text(encoding="utf-8").strip())
    except (OSError, InvalidKeyError) as exc:
        raise ConfigurationError(f"the ledger key in {path} is unusable: {exc}") from None
