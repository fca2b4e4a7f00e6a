"""What every command needs: settings, the record service, and error reporting as one line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from medweave.audit import AuditService
from medweave.config import Settings
from medweave.db import make_engine
from medweave.errors import MedweaveError
from medweave.records.service import RecordService
from medweave.security.crypto import load_or_create_master_key
from medweave.security.principal import Principal

P = ParamSpec("P")
R = TypeVar("R")


def settings() -> Settings:
    return Settings()


def record_service(cfg: Settings | None = None) -> RecordService:
    cfg = cfg or settings()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(cfg.effective_database_url)
    return RecordService(
        engine=engine,
        master=load_or_create_master_key(inline=cfg.master_key, path=cfg.effective_master_key_file),
        base_url=cfg.fhir_base,
        page_size=cfg.default_page_size,
        max_page=cfg.max_page_size,
        audit=AuditService(engine),
    )


#: The operator at the command line; what they do is audited under this name.
OPERATOR = Principal.internal("cli")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn MedweaveError (and file errors) into ``error: ...`` on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MedweaveError as exc:
            raise fail(exc.message, exc.exit_code) from None
        except OSError as exc:
            raise fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 2) from None
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper
