"""Job kinds: the named functions a job can run, so that a worker in another process can run it.

A job is stored as a kind (``"records.import"``) and JSON arguments (``{"path": ...}``); the
process that runs it looks the kind up here. A handler is ``handler(ctx, **args)``. Each process
that runs jobs (the embedded app or CLI, every ``medweave worker``) builds the same registry,
binding the handlers to its own services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medweave.errors import ConfigurationError
from medweave.jobs.context import JobContext, JobFn

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Handler
    #: Attempts allowed when the process running it dies; None: the queue's default.
    max_attempts: int | None = None


class JobKinds:
    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def add(self, name: str, handler: Handler, *, max_attempts: int | None = None) -> None:
        if name in self._kinds:
            raise ValueError(f"job kind {name!r} is registered twice")
        self._kinds[name] = Kind(name, handler, max_attempts)

    def register(self, name: str, *, max_attempts: int | None = None) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def deco(handler: Handler) -> Handler:
            self.add(name, handler, max_attempts=max_attempts)
            return handler

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def get(self, name: str) -> Kind:
        try:
            return self._kinds[name]
        except KeyError:
            raise ConfigurationError(f"job kind {name!r} is not known to this process") from None

    def bind(self, name: str, args: dict[str, Any]) -> JobFn:
        """The job function for one stored job: the handler with its arguments."""
        handler = self.get(name).handler

        def run(ctx: JobContext) -> Any:
            return handler(ctx, **args)

        return run
