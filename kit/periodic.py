"""Run a job again and again inside a worker task, until shutdown: the one loop every
timed worker job uses (image GC and renditions, search reconcile, Idempotency-Key
purge, the ETL schedule).

A job that finds a store down (StoreUnavailable, or Postgres unreachable) logs a
warning and waits for the next round; any other exception is logged with its
traceback and retried at the next round. Shutdown interrupts the wait, never a
running job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from storage.errors import StoreUnavailable
from storage.postgres import POSTGRES_DOWN

log = structlog.get_logger()

T = TypeVar("T")


def _never(_result: object) -> bool:
    return False


async def run_every(
    name: str,
    every_s: float | Callable[[], float],
    stop: asyncio.Event,
    job: Callable[[], Awaitable[T]],
    *,
    wait_first: bool = False,
    again_at_once: Callable[[T], bool] = _never,
) -> None:
    """Run `job`, wait `every_s` (a number, or a function giving the next wait, such as
    the time to a cron tick), and again. `wait_first`: wait before the first run.
    `again_at_once(result)`: true when the job left work behind (a drained batch), so
    the next run starts without waiting."""
    if wait_first and await _wait(stop, every_s):
        return
    while not stop.is_set():
        result: T | None = None
        try:
            result = await job()
        except StoreUnavailable as exc:
            log.warning("worker.job_waiting", job=name, store=exc.store, reason=exc.reason[:200])
        except POSTGRES_DOWN as exc:
            log.warning("worker.job_waiting", job=name, store="postgres", reason=str(exc)[:200])
        except Exception:
            log.exception("worker.periodic_job_failed", job=name)
        else:
            if again_at_once(result):
                continue
        if await _wait(stop, every_s):
            return


async def _wait(stop: asyncio.Event, every_s: float | Callable[[], float]) -> bool:
    """Wait for the next round; True if shutdown came first."""
    delay = every_s() if callable(every_s) else every_s
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, delay))
    return stop.is_set()
