"""Background image jobs wait quietly while Postgres is unreachable instead of crashing
(and being restarted by the supervisor) every few seconds. No service is needed: every
store points at a closed port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.stores import Stores, open_stores
from images.gc import run_image_gc
from images.renditions import run_renditions
from tests.support.isolation import isolated_settings

Job = Callable[[Stores, asyncio.Event], Awaitable[None]]

DEAD = {
    "POLYSHOP_DATABASE_URL": "postgresql://polyshop@127.0.0.1:1/none",
    "POLYSHOP_REDIS_URL": "redis://127.0.0.1:1/0",
    "POLYSHOP_SEARCH_ENGINE": "opensearch",
    "POLYSHOP_SEARCH_URL": "http://127.0.0.1:1",
    "POLYSHOP_S3_ENDPOINT": "127.0.0.1:1",
    "POLYSHOP_S3_ACCESS_KEY": "x",
    "POLYSHOP_S3_SECRET_KEY": "y",
}


@pytest.mark.parametrize("task", [run_renditions, run_image_gc], ids=["renditions", "gc"])
async def test_job_survives_postgres_outage(task: Job, tmp_path: Path) -> None:
    settings = isolated_settings(
        DEAD, tmp_path, image_renditions_poll_s=0.2, database_pool_timeout_s=0.3
    )
    stop = asyncio.Event()
    stores: Stores
    async with open_stores(settings) as stores:
        running: asyncio.Future[None] = asyncio.ensure_future(task(stores, stop))
        await asyncio.sleep(1.0)  # a few of the pool's 0.3 s connection timeouts
        assert not running.done(), running.exception() if running.done() else None
        stop.set()
        await asyncio.wait_for(running, timeout=30)
