"""The application factory: ``create_app(settings)`` wires settings to services and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from medweave import __version__
from medweave.audit import Actor, AuditService, rest_event
from medweave.config import Settings
from medweave.db import make_engine
from medweave.diagnostics.registry import Registry
from medweave.diagnostics.serving import Services
from medweave.errors import ConfigurationError, NotFound
from medweave.identity import IdentityService
from medweave.jobs import JobClient
from medweave.ledger.anchor import Chain
from medweave.ledger.anchoring import anchor_latest
from medweave.ledger.keys import load_or_create_log_key
from medweave.ledger.service import LedgerService, Sequencer
from medweave.ledger.witnessing import Cosigner, parse_witnesses
from medweave.printing.service import LabConfig, PrintLab
from medweave.records.service import RecordService
from medweave.security import cds_jwt
from medweave.security.crypto import derive_key, load_or_create_master_key
from medweave.security.tokens import load_or_create_token_secret
from medweave.telehealth.calls import Calls
from medweave.telehealth.reminders import Mailer, send_due
from medweave.telehealth.visits import mark_no_shows
from medweave.therapy import alerts as therapy_alerts
from medweave.therapy import safety as therapy_safety
from medweave.therapy.conversations import Conversations
from medweave.web import errors
from medweave.web.auth import Authenticator
from medweave.web.headers import SecurityHeaders
from medweave.web.pages.session import session_principal
from medweave.web.routes import cds, fhir, oauth, pages, visits
from medweave.web.routes import ledger as ledger_routes

log = logging.getLogger("medweave.web")
STATIC = Path(__file__).resolve().parent / "static"
_METHOD_INTERACTION = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}


def build_records(settings: Settings) -> RecordService:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    master = load_or_create_master_key(inline=settings.master_key, path=settings.effective_master_key_file)
    return RecordService(
        engine=engine,
        master=master,
        base_url=settings.fhir_base,
        page_size=settings.default_page_size,
        max_page=settings.max_page_size,
        audit=AuditService(engine),
    )


def build_ledger(settings: Settings, records: RecordService) -> LedgerService:
    return LedgerService(
        records.engine,
        master=records.master,
        signer=load_or_create_log_key(
            settings.effective_ledger_key_file, origin=settings.effective_ledger_origin
        ),
        batch=settings.ledger_batch,
        quorum=settings.ledger_witness_quorum if settings.ledger_witnesses.strip() else 0,
    )


def ledger_chain(settings: Settings) -> Chain | None:
    """The anchoring chain, when ``MEDWEAVE_LEDGER_CHAIN_URL`` is set."""
    if not settings.ledger_chain_url:
        return None
    if (settings.ledger_chain_key_file is None) == (settings.ledger_chain_account is None):
        raise ConfigurationError(
            "MEDWEAVE_LEDGER_CHAIN_URL needs MEDWEAVE_LEDGER_CHAIN_KEY_FILE or MEDWEAVE_LEDGER_CHAIN_ACCOUNT"
        )
    return Chain.connect(
        settings.ledger_chain_url,
        key_file=settings.ledger_chain_key_file,
        sender=settings.ledger_chain_account,
    )


def witness_step(settings: Settings, ledger: LedgerService) -> Callable[[], object] | None:
    """What the ledger's publisher thread does after each signed batch (and every 10 s): ask the
    configured witnesses to cosign (each with its own back-off), then anchor the latest witnessed
    checkpoint when one is due."""
    witnesses = parse_witnesses(settings.ledger_witnesses)
    chain = ledger_chain(settings)
    if not witnesses and chain is None:
        return None
    every = timedelta(seconds=settings.ledger_anchor_interval_s)

    cosign = Cosigner(ledger, witnesses) if witnesses else None

    def step() -> None:
        if cosign is not None:
            cosign()
        if chain is not None:
            anchor_latest(ledger, chain, every=every)

    return step


def build_registry(settings: Settings, records: RecordService) -> Registry:
    """The model registry, with the clinical leads from ``MEDWEAVE_ML_CLINICAL_LEADS``."""
    names = [u.strip() for u in settings.ml_clinical_leads.split(",") if u.strip()]
    identity = IdentityService(engine=records.engine, master=records.master)
    leads = []
    for name in names:  # principals carry user ids; the setting names users
        try:
            leads.append(identity.get_user_by_username(name).id)
        except NotFound:
            log.warning("MEDWEAVE_ML_CLINICAL_LEADS names no user %r; ignored", name)
    if names and not leads:
        leads = ["(nobody: no configured clinical lead exists)"]  # never widen to every clinician
    return Registry(records.engine, records.trail.audit, leads=leads)


def cds_clients(settings: Settings) -> dict[str, cds_jwt.CdsClient]:
    """The trusted CDS Hooks clients, from ``MEDWEAVE_CDS_CLIENTS_FILE`` (none: every call is 401)."""
    if settings.cds_clients_file is None:
        return {}
    try:
        text = settings.cds_clients_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read MEDWEAVE_CDS_CLIENTS_FILE: {exc.strerror}") from None
    return cds_jwt.load_clients(text)


def build_authenticator(settings: Settings, *, identity: IdentityService | None = None) -> Authenticator:
    secret = load_or_create_token_secret(
        inline=settings.token_secret, path=settings.effective_token_secret_file
    )
    return Authenticator(
        secret=secret, issuer=settings.base_url, audience=settings.fhir_base, identity=identity
    )


def create_app(
    settings: Settings | None = None,
    *,
    records: RecordService | None = None,
    authenticator: Authenticator | None = None,
    identity: IdentityService | None = None,
    ledger: LedgerService | None = None,
    calls: Calls | None = None,
    jobs: JobClient | None = None,
) -> FastAPI:
    settings = settings or Settings()
    records = records or build_records(settings)
    identity = identity or IdentityService(engine=records.engine, master=records.master)
    ledger = ledger or build_ledger(settings, records)
    authenticator = authenticator or build_authenticator(settings, identity=identity)
    calls = calls or Calls.from_settings(settings, token_secret=authenticator.secret)
    conversations = build_conversations(settings, records)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        interval = settings.ledger_interval_ms / 1000
        after = witness_step(settings, ledger)
        sequencer = Sequencer(ledger, interval=interval, after=after).start() if interval > 0 else None
        sweeper = asyncio.create_task(_every_minute(telehealth_sweep(records, settings)))
        renotifier = asyncio.create_task(_every_minute(therapy_sweep(records, settings, conversations)))
        # Expired sessions and sign-in codes, and idle throttle rows, would otherwise pile up.
        housekeeper = asyncio.create_task(_every_minute(identity.prune))
        yield
        sweeper.cancel()
        renotifier.cancel()
        housekeeper.cancel()
        await calls.hub.close()
        if sequencer is not None:
            sequencer.stop()
        if records.trail.audit is not None:
            records.trail.audit.close()

    app = FastAPI(
        title="Medweave",
        version=__version__,
        description="FHIR R4 REST API of the Medweave health platform.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.records = records
    app.state.authenticator = authenticator
    app.state.calls = calls
    app.state.conversations = conversations
    app.state.identity = identity
    app.state.ledger = ledger
    app.state.session_principal = session_principal
    app.state.jobs = jobs
    app.state.registry = build_registry(settings, records)
    app.state.print_lab = PrintLab(records, LabConfig.from_settings(settings))
    app.state.cds = Services(
        app.state.registry,
        pseudonym_key=derive_key(records.master.key, info=b"medweave-ml-prediction-subject"),
        base_url=settings.base_url,
    )
    app.state.cds_clients = cds_clients(settings)
    app.state.cds_replay = cds_jwt.ReplayCache()
    errors.install(app)
    app.include_router(oauth.router)  # before /fhir/{type}/{id}, which would take /fhir/.well-known/...
    app.include_router(fhir.router)
    app.include_router(pages.router)
    app.include_router(ledger_routes.router)
    app.include_router(visits.router)
    app.include_router(cds.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.middleware("http")(_audit_unserved)
    app.add_middleware(SecurityHeaders, tls=settings.base_url.startswith("https://"))
    return app


def mailer(settings: Settings) -> Mailer | None:
    """The SMTP server of reminders, when ``MEDWEAVE_SMTP_HOST`` is set."""
    if not settings.smtp_host:
        return None
    return Mailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password_file=settings.smtp_password_file,
        sender=settings.smtp_from,
    )


def build_conversations(settings: Settings, records: RecordService) -> Conversations:
    """The therapy assistant: crisis lines (the clinic's file, checked now), alert notices."""
    lines = therapy_safety.DEFAULT_LINES
    if settings.therapy_crisis_lines_file is not None:
        try:
            text = settings.therapy_crisis_lines_file.read_text(encoding="utf-8")
            lines = therapy_safety.parse_lines(text)
        except (OSError, therapy_safety.InvalidCrisisLines) as exc:
            raise ConfigurationError(f"MEDWEAVE_THERAPY_CRISIS_LINES_FILE: {exc}") from None
    smtp = mailer(settings)
    emails = tuple(a.strip() for a in settings.therapy_alert_emails.split(",") if a.strip())
    notifier = None
    if (emails and smtp is not None) or settings.therapy_alert_webhook:
        notifier = therapy_alerts.Notifier(
            emails=emails if smtp is not None else (),
            send_email=smtp.send if smtp is not None else None,
            sender=settings.smtp_from,
            webhook=settings.therapy_alert_webhook,
            dashboard_url=settings.base_url.rstrip("/") + "/therapy/caseload",
        )
    return Conversations(
        records,
        model=settings.therapy_risk_model,
        lines=lines,
        locale=settings.therapy_locale,
        notifier=notifier,
    )


def therapy_sweep(
    records: RecordService, settings: Settings, conversations: Conversations
) -> Callable[[], object]:
    """Send again the high-risk alerts nobody has acknowledged."""
    after = timedelta(minutes=settings.therapy_renotify_minutes)

    def run() -> None:
        if conversations.notifier is not None:
            therapy_alerts.renotify(records, conversations.notifier, now=datetime.now(UTC), after=after)

    return run


def telehealth_sweep(records: RecordService, settings: Settings) -> Callable[[], object]:
    """One run of the minute's telehealth chores: mark no-shows, send the reminders that are due."""
    grace = timedelta(minutes=settings.telehealth_no_show_minutes)
    smtp = mailer(settings)

    def run() -> None:
        now = datetime.now(UTC)
        mark_no_shows(records, now=now, grace=grace)
        if smtp is not None:
            send_due(
                records,
                send=smtp.send,
                sender=smtp.sender,
                base_url=settings.base_url,
                now=now,
                ahead=timedelta(hours=settings.reminder_hours),
            )

    return run


async def _every_minute(chore: Callable[[], object]) -> None:
    while True:
        try:
            await run_in_threadpool(chore)
        except Exception as exc:  # a busy database or mail server: try again next minute
            log.warning("a periodic sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(60)


async def _audit_unserved(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Audit FHIR requests refused before they reached a record service (401, bad body, bad type).

    Requests that reached a service were audited there, with their patients; this closes the gap
    so that every API call leaves an AuditEvent.
    """
    response = await call_next(request)
    if not request.url.path.startswith("/fhir") or request.url.path == "/fhir/metadata":
        return response
    if getattr(request.state, "audited", False):
        return response
    records: RecordService = request.app.state.records
    if records.trail.audit is None:
        return response
    principal = getattr(request.state, "principal", None)
    who = principal.audit_ref if principal is not None else "anonymous"
    address = request.client.host if request.client else None
    event = rest_event(
        _METHOD_INTERACTION.get(request.method, "operation"),
        status=response.status_code,
        actor=Actor(who=who, address=address),
        operation=None if request.method in _METHOD_INTERACTION else request.method.lower(),
    )
    await run_in_threadpool(records.trail.audit.record, event)
    return response
