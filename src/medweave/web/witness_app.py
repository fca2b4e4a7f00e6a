"""``medweave ledger witness serve``: this instance as a C2SP tlog-witness for other logs.

One endpoint, ``POST /add-checkpoint`` (https://c2sp.org/tlog-witness). The request is judged
by ``medweave.ledger.witness.judge``; the new size and root are stored by compare-and-swap in
the same transaction, so two racing requests cannot both move the log, and a restart never
forgets a cosigned size. Answers are plain text, as the spec has them.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from medweave.db import write_tx
from medweave.ledger import store
from medweave.ledger.note import Signer
from medweave.ledger.witness import Known, StaleSize, judge
from medweave.ledger.witness_protocol import (
    PATH,
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    ProtocolError,
    Status,
    format_cosignatures,
    format_size,
)

MAX_BODY = 64 * 1024  # 63 proof lines and a checkpoint with its signatures fit many times over
_log = logging.getLogger("medweave.witness")


def create_witness_app(engine: object, signer: Signer) -> FastAPI:
    app = FastAPI(title="Medweave witness", docs_url=None, redoc_url=None, openapi_url=None)

    def add_checkpoint(body: bytes) -> Response:
        try:
            request = AddCheckpoint.parse(body)
            origin = request.tree().origin
            with write_tx(engine) as conn:  # type: ignore[arg-type]
                row = store.witness_log(conn, origin)
                known = Known(row.vkey, row.size, row.root) if row is not None else None
                done = judge(request, known=known, signer=signer, timestamp=int(time.time()))
                if known is not None and not store.advance_witness_log(
                    conn, origin=origin, old_size=known.size, size=done.size, root=done.root
                ):
                    now = store.witness_log(conn, origin)
                    raise StaleSize(now.size if now is not None else 0)
        except StaleSize as exc:
            return Response(format_size(exc.size), status_code=Status.CONFLICT, media_type=SIZE_CONTENT_TYPE)
        except ProtocolError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=int(exc.status))
        _log.info("cosigned %s at size %d", done.origin, done.size)
        return PlainTextResponse(format_cosignatures([done.line]))

    @app.post(PATH)
    async def add_checkpoint_route(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("request body too large\n", status_code=413)
        return await run_in_threadpool(add_checkpoint, body)

    return app
