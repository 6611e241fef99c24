"""The worker task that makes deferred renditions (setting `image_renditions = "worker"`)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from app.images.service import image_blobs
from app.stores import Stores
from storage import images
from storage.errors import StoreUnavailable
from storage.postgres import POSTGRES_DOWN

log = structlog.get_logger()


async def make_pending(stores: Stores, limit: int = 8) -> int:
    settings = stores.settings
    return await images.make_pending_renditions(
        stores.pg,
        image_blobs(stores),
        widths=settings.image_rendition_widths,
        max_pixels=settings.image_max_pixels,
        limit=limit,
    )


async def run_renditions(stores: Stores, stop: asyncio.Event) -> None:
    """Drain pending renditions; when there are none, look again every poll interval.
    Runs in either mode, so rows left pending by an earlier "worker" setting get done."""
    while not stop.is_set():
        done = 0
        try:
            done = await make_pending(stores)
        except StoreUnavailable as exc:
            log.warning("images.renditions_waiting", store=exc.store, reason=exc.reason[:200])
        except POSTGRES_DOWN as exc:
            log.warning("images.renditions_waiting", store="postgres", reason=str(exc)[:200])
        if done == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=stores.settings.image_renditions_poll_s)
