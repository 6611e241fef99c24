"""Keeps an API replica's key cache honest: LISTEN for key changes (a revocation) and
drop the cache on each; while the listening connection is down the cache is not used."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from app.stores import Stores
from storage import api_keys
from storage.listen import listen
from storage.postgres import connect_kwargs


@contextlib.asynccontextmanager
async def watching_key_revocations(stores: Stores) -> AsyncIterator[None]:
    s = stores.settings
    cache = stores.api_keys
    stop = asyncio.Event()
    task = asyncio.create_task(
        listen(
            s.database_url,
            api_keys.NOTIFY_CHANNEL,
            schema=s.database_schema,
            connect_kwargs=connect_kwargs(
                schema=s.database_schema,
                application_name=f"{s.service_name}-keys-listen",
                statement_timeout_ms=s.database_statement_timeout_ms,
            ),
            on_notify=cache.clear,
            on_listening=cache.set_listening,
            stop=stop,
        )
    )
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
