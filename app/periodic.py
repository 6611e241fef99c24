"""Run a job at a fixed interval inside a worker task, until shutdown.

A job that raises is logged and retried at the next tick; shutdown interrupts the wait,
never a running job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger()


async def run_every(
    name: str, interval_s: float, stop: asyncio.Event, job: Callable[[], Awaitable[object]]
) -> None:
    while not stop.is_set():
        try:
            await job()
        except Exception:
            log.exception("worker.periodic_job_failed", job=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
