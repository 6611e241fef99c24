"""Worker task: forget Idempotency-Keys once they are older than the retention window."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from app.stores import Stores
from kit.periodic import run_every
from storage import idempotency

log = structlog.get_logger()


async def purge_once(stores: Stores) -> int:
    retention = timedelta(hours=stores.settings.idempotency_retention_h)
    async with stores.pg.connection() as conn:
        removed = await idempotency.purge(conn, older_than=retention)
    if removed:
        log.info("idempotency.purged", removed=removed)
    return removed


async def run_idempotency_purge(stores: Stores, stop: asyncio.Event) -> None:
    await run_every("idempotency-purge", 3600, stop, lambda: purge_once(stores))
