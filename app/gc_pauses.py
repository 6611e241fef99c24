"""The garbage collector's pauses, timed by a `gc.callbacks` hook into
`polyshop_gc_pause_seconds{generation}` (app/metrics.py). A collection runs inside
whatever allocation triggered it, on the event loop: a long one delays every request in
flight on the replica at once."""

from __future__ import annotations

import gc
import time
from typing import Any

from app.metrics import GC_PAUSE

_started: list[float] = []


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        GC_PAUSE.labels(str(info.get("generation", "?"))).observe(
            time.perf_counter() - _started.pop()
        )


def install() -> None:
    """Time every collection of this process from now on (idempotent)."""
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, the app, its routes and schemas, the
    clients) out of the collector's reach: a full collection then walks only what the
    requests allocated since, not the whole startup heap (`gc.freeze`). Called once,
    when the app has started."""
    gc.collect()
    gc.freeze()
