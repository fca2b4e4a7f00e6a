"""The benchmark's baseline server: Medweave with authentication, access checks and audit OFF.

This exists only in the bench. The product has no switch to turn these off, and must not get one.
It is the product's own ``create_app`` with two parts swapped for the benchmark:

* the ``RecordService`` is built like ``medweave.web.app.build_records`` but with ``audit=None``,
  so no AuditEvent is written (and ``_audit_unserved`` does nothing either);
* the ``Authenticator`` is :class:`TrustingAuthenticator`, whose ``from_bearer`` verifies nothing,
  looks nobody up and answers ``Principal.internal()`` (``system/*.cruds``), so every access check
  takes its "system caller, sees everything" branch and no in-care subquery runs.

Clients must still send an ``Authorization: Bearer <anything>`` header (``authenticate`` asks for
one). Everything else (routing, body parsing, validation, the store, encryption, indexing, the
uvicorn settings of ``medweave serve``) is the product's code, so the ratio of the two servers'
figures is the cost of authentication, access checks and auditing.

Started by ``bench/records.py`` with the same environment as ``medweave serve``::

    MEDWEAVE_DATA_DIR=... .venv/bin/python bench/baseline_app.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

from medweave.config import Settings
from medweave.db import make_engine
from medweave.records.service import RecordService
from medweave.security.crypto import load_or_create_master_key
from medweave.security.principal import Principal
from medweave.web.app import build_authenticator, create_app
from medweave.web.auth import Authenticator


class TrustingAuthenticator(Authenticator):
    """Any bearer token is the operator: no signature check, no identity lookup, no scope limits."""

    def from_bearer(self, token: str, *, address: str | None) -> Principal:
        return Principal.internal("bench-baseline")


def create(settings: Settings | None = None) -> FastAPI:
    """The product app with auth, access checks and audit off (``uvicorn --factory`` entry point)."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    master = load_or_create_master_key(inline=settings.master_key, path=settings.effective_master_key_file)
    records = RecordService(
        engine=engine,
        master=master,
        base_url=settings.fhir_base,
        page_size=settings.default_page_size,
        max_page=settings.max_page_size,
        audit=None,
    )
    real = build_authenticator(settings)
    authenticator = TrustingAuthenticator(secret=real.secret, issuer=real.issuer, audience=real.audience)
    return create_app(settings, records=records, authenticator=authenticator)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description="Medweave with auth, access checks and audit off (bench only).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args(argv)
    # The same uvicorn settings as ``medweave serve`` (medweave.cli.main.serve).
    uvicorn.run(create(), host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
