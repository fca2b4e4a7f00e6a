"""Settings, read once at the edges (``web.app.create_app``, ``cli``) from ``MEDWEAVE_*``.

Embedded defaults need no servers: SQLite (WAL) and files under ``./medweave-data``. Production
points ``MEDWEAVE_DATABASE_URL`` at PostgreSQL. Secrets come from the environment or from files
under the data directory, created on first run with mode 0600 — never from the repository.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDWEAVE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("medweave-data"), description="Where the embedded database and files live."
    )
    database_url: str | None = Field(
        default=None,
        description="Database URL; default SQLite at DATA_DIR/medweave.db; postgresql://... in production.",
    )
    master_key: str | None = Field(
        default=None,
        description="Base64 256-bit key that wraps the per-patient data keys. "
        "Default: DATA_DIR/secrets/master.key (made on first run, 0600).",
    )
    master_key_file: Path | None = Field(default=None, description="File holding the master key (base64).")
    token_secret: str | None = Field(
        default=None,
        description="Base64 secret (32+ bytes) that signs access tokens; default DATA_DIR/secrets/token.key.",
    )
    token_secret_file: Path | None = Field(default=None, description="File holding the token-signing secret.")
    base_url: str = Field(
        default="http://127.0.0.1:8000", description="Public base URL, used in Bundle links and fullUrls."
    )
    jobs_broker: str = Field(
        default="embedded",
        description="'embedded' (in-process jobs) or a Redis URL for `medweave worker` processes.",
    )
    jobs_namespace: str = Field(default="medweave", description="Prefix of the job queue's Redis keys.")
    jobs_worker_timeout: float = Field(
        default=60.0, description="Seconds of silence before a worker counts as dead and its jobs move on."
    )
    jobs_max_attempts: int = Field(
        default=3, description="Attempts a retryable job gets across worker deaths."
    )
    host: str = Field(default="127.0.0.1", description="Address `medweave serve` binds.")
    port: int = Field(default=8000, description="Port `medweave serve` binds.")
    max_body_bytes: int = Field(default=5 * 1024 * 1024, description="Largest request body accepted.")
    max_json_depth: int = Field(default=64, description="Deepest JSON nesting accepted.")
    default_page_size: int = Field(default=50, description="Search page size when _count is absent.")
    max_page_size: int = Field(default=1000, description="Largest _count honoured.")
    ledger_key_file: Path | None = Field(
        default=None,
        description="The ledger's signing key (a C2SP skey). Default: DATA_DIR/secrets/ledger.key "
        "(made on first run, 0600).",
    )
    ledger_origin: str | None = Field(
        default=None,
        description="Name of a new ledger key, the log's origin line. Default: BASE_URL's host + '/ledger'.",
    )
    ledger_interval_ms: int = Field(
        default=250,
        ge=0,
        description="How often the ledger sequences new entries (milliseconds); 0: not in this process.",
    )
    ledger_batch: int = Field(default=1000, ge=1, description="Most entries the ledger sequences at once.")
    ledger_witnesses: str = Field(
        default="",
        description="Witnesses asked to cosign each checkpoint: 'URL VKEY' pairs separated by ';'.",
    )
    ledger_chain_url: str | None = Field(
        default=None,
        description="JSON-RPC endpoint of the chain checkpoints are anchored on (off when unset).",
    )
    ledger_chain_key_file: Path | None = Field(
        default=None, description="File holding the hex private key of the anchoring account."
    )
    ledger_chain_account: str | None = Field(
        default=None,
        description="Address the chain endpoint signs for (a signing proxy before a KMS), not a key file.",
    )
    ledger_anchor_interval_s: int = Field(
        default=3600, ge=1, description="Seconds between anchors of witnessed checkpoints."
    )
    ledger_witness_quorum: int = Field(
        default=1, ge=0, description="Cosignatures a checkpoint needs to count as witnessed."
    )
    telehealth_signaling: str = Field(
        default="embedded",
        description="Where video-visit signaling meets: 'embedded' (this process) or a Redis URL "
        "(pub/sub across app processes).",
    )
    telehealth_stun_urls: str = Field(
        default="", description="STUN servers for calls, space-separated (stun:stun.example.org:3478)."
    )
    telehealth_turn_urls: str = Field(
        default="",
        description="TURN servers for calls, space-separated (turn:turn.example.org:3478?transport=udp).",
    )
    telehealth_turn_secret_file: Path | None = Field(
        default=None, description="File holding coturn's static-auth-secret (REST-API TURN credentials)."
    )
    telehealth_ice_policy: str = Field(
        default="all",
        pattern="^(all|relay)$",
        description="'all', or 'relay' to send all media through TURN (strict networks, tests).",
    )
    telehealth_no_show_minutes: int = Field(
        default=15,
        ge=1,
        description="Minutes after the start before a patient who never checked in is a no-show.",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for reminders (off when unset).")
    smtp_port: int = Field(default=587, description="SMTP port (587 with STARTTLS, 465 with TLS, 25 plain).")
    smtp_username: str | None = Field(default=None, description="SMTP user, if the server asks for one.")
    smtp_password_file: Path | None = Field(default=None, description="File holding the SMTP password.")
    smtp_from: str = Field(default="medweave@localhost", description="Sender address of reminders.")
    smtp_tls: str = Field(
        default="starttls", pattern="^(starttls|tls|none)$", description="'starttls', 'tls' or 'none'."
    )
    reminder_hours: int = Field(
        default=24, ge=1, description="How long before a visit its reminder goes out."
    )
    therapy_locale: str = Field(
        default="en-US", description="Which crisis lines the therapy assistant gives (en-US, en-GB, ...)."
    )
    therapy_crisis_lines_file: Path | None = Field(
        default=None, description="A JSON file of the clinic's own crisis lines per locale."
    )
    therapy_alert_emails: str = Field(
        default="", description="Comma-separated addresses that safety alerts go to (needs SMTP)."
    )
    therapy_alert_webhook: str | None = Field(
        default=None, description="A URL that each safety alert is POSTed to, as JSON without PHI."
    )
    therapy_renotify_minutes: int = Field(
        default=15, ge=1, description="Minutes before an unacknowledged high-risk alert is sent again."
    )
    therapy_review_after_sessions: int = Field(
        default=6,
        ge=1,
        description="Scores at a step without reliable improvement before a step-up review is flagged.",
    )
    therapy_risk_model: bool = Field(
        default=True, description="Run the embedding layer of risk detection (the phrase layers always run)."
    )
    ml_clinical_leads: str = Field(
        default="",
        description="Comma-separated user names who may approve or retire models (default: any clinician).",
    )
    cds_clients_file: Path | None = Field(
        default=None,
        description="JSON list of trusted CDS Hooks clients: issuer, public JWK Set (docs/diagnostics.md).",
    )
    pacs_url: str | None = Field(
        default=None,
        description="The PACS the print lab pulls studies from: http(s)://.../dicom-web or dicom://AET@host:port.",
    )
    print_max_volume_mb: int = Field(
        default=1024,
        le=1900,  # a file is sealed in one AES-GCM call, which takes under 2 GiB
        description="Largest image volume (decoded, float32) and upload the print lab accepts.",
    )
    printers_file: Path | None = Field(
        default=None,
        description="JSON list of the lab's printers and materials (default: the packaged list).",
    )
    print_printer: str = Field(default="prusa-mk4", description="The printer print checks use by default.")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            return url
        return f"sqlite:///{(self.data_dir / 'medweave.db').resolve()}"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "secrets" / "master.key"

    @property
    def effective_token_secret_file(self) -> Path:
        return self.token_secret_file or self.data_dir / "secrets" / "token.key"

    @property
    def effective_ledger_key_file(self) -> Path:
        return self.ledger_key_file or self.data_dir / "secrets" / "ledger.key"

    @property
    def effective_ledger_origin(self) -> str:
        if self.ledger_origin:
            return self.ledger_origin
        return urlsplit(self.base_url).netloc + "/ledger"

    @property
    def fhir_base(self) -> str:
        return self.base_url.rstrip("/") + "/fhir"
