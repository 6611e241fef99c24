"""The worker task that collects orphan image blobs (see storage.images.collect_orphans)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog

from app.images.service import image_blobs
from app.metrics import IMAGE_GC_DELETED
from app.stores import Stores
from storage import images
from storage.errors import StoreUnavailable
from storage.postgres import POSTGRES_DOWN

log = structlog.get_logger()


async def collect_once(stores: Stores) -> images.GcReport:
    report = await images.collect_orphans(
        stores.pg,
        image_blobs(stores),
        grace_s=stores.settings.image_gc_grace_s,
        now=datetime.now(UTC),
    )
    IMAGE_GC_DELETED.inc(len(report.deleted))
    log.info("images.gc", scanned=report.scanned, deleted=len(report.deleted))
    return report


async def run_image_gc(stores: Stores, stop: asyncio.Event) -> None:
    """Every `image_gc_interval_s`, until shutdown. A store being down skips one round.
    The first round also creates the bucket (and policy): the worker's startup hook."""
    while not stop.is_set():
        try:
            await image_blobs(stores).ensure_bucket()
            await collect_once(stores)
        except StoreUnavailable as exc:
            log.warning("images.gc_skipped", store=exc.store, reason=exc.reason[:200])
        except POSTGRES_DOWN as exc:
            log.warning("images.gc_skipped", store="postgres", reason=str(exc)[:200])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=stores.settings.image_gc_interval_s)
