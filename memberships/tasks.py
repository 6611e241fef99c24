"""The worker's membership jobs: move due reminders into the outbox, renew what is due.
Both are one transaction per batch and safe with several workers (SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from memberships import repository
from memberships.clock import Clock, system_clock

log = structlog.get_logger()


@dataclass(frozen=True)
class SweepResult:
    reminders: int
    renewed: int
    max_lag_s: float


async def sweep_once(
    pool: AsyncConnectionPool[Any],
    *,
    reminder_days: float,
    clock: Clock = system_clock,
    batch: int = 200,
) -> SweepResult:
    """Enqueue every due reminder, then renew every membership that is due."""
    now = clock()
    lags: list[float] = []
    while True:
        async with pool.connection() as conn, conn.transaction():
            swept = await repository.sweep_reminders(conn, now=now, limit=batch)
        lags += swept
        if len(swept) < batch:
            break
    renewed = 0
    while True:
        async with pool.connection() as conn, conn.transaction():
            n = await repository.renew_due(conn, now=now, reminder_days=reminder_days, limit=batch)
        renewed += n
        if n < batch:
            break
    if lags or renewed:
        log.info("memberships.swept", reminders=len(lags), renewed=renewed)
    return SweepResult(len(lags), renewed, max(lags, default=0.0))


async def run_sweeps(
    pool: AsyncConnectionPool[Any],
    stop: asyncio.Event,
    *,
    interval_s: float,
    reminder_days: float,
    clock: Clock = system_clock,
    on_result: Callable[[SweepResult], None] | None = None,
) -> None:
    while not stop.is_set():
        try:
            result = await sweep_once(pool, reminder_days=reminder_days, clock=clock)
            if on_result is not None:
                on_result(result)
        except Exception:
            log.exception("memberships.sweep_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
