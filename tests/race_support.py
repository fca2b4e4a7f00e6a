"""Start many calls at the same instant (a barrier) and collect each one's result or error."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from medweave.errors import MedweaveError

K = TypeVar("K", bound=Hashable)


def all_at_once(call: Callable[[K], object], keys: Sequence[K], *, timeout: float = 120) -> dict[K, object]:
    """``{key: call(key) or the MedweaveError it raised}``, every call released together."""
    barrier = threading.Barrier(len(keys))
    outcomes: dict[K, object] = {}

    def attempt(key: K) -> None:
        barrier.wait()
        try:
            outcomes[key] = call(key)
        except MedweaveError as exc:
            outcomes[key] = exc

    threads = [threading.Thread(target=attempt, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return outcomes
