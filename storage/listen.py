"""Wake-ups from Postgres: LISTEN on a channel, for one schema, until stopped.

Every NOTIFY of polyshop carries the schema name as its payload (one channel serves
every schema of a database); only ours counts. The listening connection is reopened
after a loss; `on_listening(False)` says when nobody listens (a caller relying on the
notifications must then fall back: poll, or trust nothing it cached), and a reconnect
calls `on_notify` once, since notifications sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
import structlog
from psycopg import sql

log = structlog.get_logger()

RETRY_S = 1.0


async def listen(
    url: str,
    channel: str,
    *,
    schema: str,
    connect_kwargs: dict[str, Any],
    on_notify: Callable[[], None],
    stop: asyncio.Event,
    on_listening: Callable[[bool], None] = lambda _listening: None,
    retry_s: float = RETRY_S,
) -> None:
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, **connect_kwargs
            ) as conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                on_listening(True)
                on_notify()  # whatever was sent while nobody listened
                async for notify in conn.notifies():
                    if notify.payload == schema:
                        on_notify()
        except psycopg.Error as exc:
            log.warning("postgres.listen_lost", channel=channel, error=str(exc)[:200])
        finally:
            on_listening(False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_s)
