"""The ledger's public face: the latest signed checkpoint, proofs, the log key, and a page.

Everything here is public, as in Certificate Transparency: checkpoints and proofs are hashes and
sizes, with no PHI, and anyone (a patient, an auditor, a witness) must be able to fetch them
without an account. Hashes in JSON are lowercase hex, as ``medweave ledger verify-*`` takes them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response

from medweave.errors import NotFound
from medweave.ledger.service import LedgerService
from medweave.web.pages.render import page

router = APIRouter(tags=["Ledger"])
_TEXT = "text/plain; charset=utf-8"
MAX_SIZE = 2**63 - 1  # the database's BIGINT; a larger size is a 400, not an overflow


def _ledger(request: Request) -> LedgerService:
    ledger: LedgerService = request.app.state.ledger
    return ledger


@router.get("/ledger/checkpoint", response_class=PlainTextResponse)
async def checkpoint(request: Request) -> Response:
    """The latest checkpoint: a C2SP signed note, with the witnesses' cosignature lines."""
    latest = await run_in_threadpool(_ledger(request).latest)
    if latest is None:
        raise NotFound("the ledger has no checkpoint yet")
    return Response(latest.note, media_type=_TEXT, headers={"Cache-Control": "no-cache"})


@router.get("/ledger/vkey", response_class=PlainTextResponse)
async def vkey(request: Request) -> Response:
    """The log's public key (C2SP vkey), to verify checkpoints and receipts with."""
    return Response(_ledger(request).vkey + "\n", media_type=_TEXT)


@router.get("/ledger/proof/inclusion")
async def inclusion(
    request: Request,
    index: int = Query(..., ge=0, le=MAX_SIZE, description="The leaf's index (0-based)."),
    size: int = Query(
        ..., ge=1, le=MAX_SIZE, description="A tree size the log has published a checkpoint for."
    ),
) -> JSONResponse:
    """An RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    proof = await run_in_threadpool(lambda: _ledger(request).inclusion_proof(index=index, size=size))
    return JSONResponse({"index": index, "size": size, "proof": [h.hex() for h in proof]})


@router.get("/ledger/proof/consistency")
async def consistency(
    request: Request,
    old: int = Query(..., ge=0, le=MAX_SIZE, description="The older tree size."),
    new: int = Query(..., ge=0, le=MAX_SIZE, description="The newer tree size (a published checkpoint)."),
) -> JSONResponse:
    """An RFC 9162 consistency proof from the tree of ``old`` leaves to that of ``new``."""
    proof = await run_in_threadpool(lambda: _ledger(request).consistency_proof(old=old, new=new))
    return JSONResponse({"old": old, "new": new, "proof": [h.hex() for h in proof]})


@router.get("/ledger")
async def ledger_page(request: Request) -> Response:
    """What the log is, its key, its latest checkpoint, and how to check it."""
    ledger = _ledger(request)
    latest = await run_in_threadpool(ledger.latest)
    context: dict[str, Any] = {
        "title": "Records ledger",
        "origin": ledger.origin,
        "vkey": ledger.vkey,
        "latest": latest,
    }
    return page(request, "ledger.html", **context)
