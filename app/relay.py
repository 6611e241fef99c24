"""The outbox relay: delivers each outbox event to every registered consumer, at least once.

Per consumer, a batch is claimed in one transaction (`FOR UPDATE SKIP LOCKED`, so several
workers share the work without handing one event to two of them at once), applied, and
acknowledged in that same transaction. A batch that fails is pushed back with exponential
backoff, capped at `outbox_backoff_max_s` (so a store that comes back after a long outage
gets its events within that bound, not after the last doubled delay), and, past
`outbox_max_attempts`, dead-lettered.

The relay sleeps on LISTEN (the outbox trigger NOTIFYs at commit with the schema name as
payload) and polls every `outbox_poll_s` only as a fallback: for retries whose backoff
expired, and for notifications lost while the listening connection was down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import psycopg
import structlog

from app.logging import request_ids
from app.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_DEAD_LETTERS,
    OUTBOX_FAILURES,
    OUTBOX_OLDEST_AGE,
    OUTBOX_RELAYED,
)
from app.stores import Stores
from storage import outbox
from storage.listen import listen
from storage.outbox import Consumer
from storage.postgres import connect_kwargs

log = structlog.get_logger()

LISTEN_RETRY_S = 1.0


class Relay:
    def __init__(self, stores: Stores, consumers: Sequence[Consumer]) -> None:
        self.stores = stores
        self.consumers = list(consumers)
        self.listening = asyncio.Event()  # set while LISTEN is active (tests wait on it)
        self.rounds = 0  # drain rounds run by `run` (wake-ups, for tests and debugging)

    async def relay_batch(self, consumer: Consumer) -> tuple[int, bool]:
        """Claim, apply and settle one batch: (events claimed, whether it was applied)."""
        s = self.stores.settings
        async with self.stores.pg.connection() as conn, conn.transaction():
            events = await outbox.claim(conn, consumer.name, s.outbox_batch_size)
            if not events:
                return 0, True
            ids = [e.id for e in events]
            try:
                await consumer.apply(events)
            except Exception as exc:
                dead = await outbox.fail(
                    conn,
                    consumer.name,
                    ids,
                    f"{type(exc).__name__}: {exc}",
                    max_attempts=s.outbox_max_attempts,
                    backoff_s=s.outbox_backoff_s,
                    backoff_max_s=s.outbox_backoff_max_s,
                )
                OUTBOX_FAILURES.labels(consumer.name).inc()
                OUTBOX_DEAD_LETTERS.labels(consumer.name).inc(dead)
                log.warning(
                    "outbox.apply_failed",
                    consumer=consumer.name,
                    events=len(ids),
                    request_ids=request_ids(e.payload for e in events),
                    dead_lettered=dead,
                    error=str(exc)[:200],
                )
                return len(ids), False
            await outbox.ack(conn, consumer.name, ids)
        OUTBOX_RELAYED.labels(consumer.name).inc(len(ids))
        log.info(
            "outbox.relayed",
            consumer=consumer.name,
            events=len(ids),
            request_ids=request_ids(e.payload for e in events),
        )
        return len(ids), True

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Relay every due event of every consumer; returns how many were acknowledged.
        The consumers drain side by side (each has its own cursor, claims and acks), so
        one that waits (the search consumer waits for the index refresh) does not hold
        the others (order e-mails) back. A consumer that fails is left alone until its
        backoff expires."""
        results = await asyncio.gather(
            *(self._drain_one(c, stop) for c in self.consumers), return_exceptions=True
        )
        for result in results:  # every consumer has finished: raise the first failure
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    async def _drain_one(self, consumer: Consumer, stop: asyncio.Event | None) -> int:
        acked = 0
        while stop is None or not stop.is_set():
            claimed, ok = await self.relay_batch(consumer)
            if not ok:
                break
            acked += claimed
            if claimed < self.stores.settings.outbox_batch_size:
                break
        return acked

    async def report_backlog(self) -> None:
        async with self.stores.pg.connection() as conn:
            backlog = await outbox.backlog(conn)
        for consumer in self.consumers:
            count, age = backlog.get(consumer.name, (0, 0.0))
            OUTBOX_BACKLOG.labels(consumer.name).set(count)
            OUTBOX_OLDEST_AGE.labels(consumer.name).set(age)

    async def run(self, stop: asyncio.Event) -> None:
        log.info("outbox.relay_started", consumers=[c.name for c in self.consumers])
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake, stop))
        try:
            while not stop.is_set():
                wake.clear()  # before draining: a NOTIFY during the drain wakes us again
                self.rounds += 1
                try:
                    await self.drain(stop)
                    await self.report_backlog()
                except (psycopg.OperationalError, OSError) as exc:
                    log.warning("outbox.relay_postgres_error", error=str(exc)[:200])
                await _first_of(wake, stop, poll_s=self.stores.settings.outbox_poll_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        s = self.stores.settings
        kwargs = connect_kwargs(
            schema=s.database_schema,
            application_name="polyshop-relay-listen",
            statement_timeout_ms=s.database_statement_timeout_ms,
        )

        def listening(state: bool) -> None:
            if state:
                self.listening.set()
            else:
                self.listening.clear()

        await listen(
            s.database_url,
            outbox.NOTIFY_CHANNEL,
            schema=s.database_schema,
            connect_kwargs=kwargs,
            on_notify=wake.set,  # events may have committed while nobody listened
            on_listening=listening,
            stop=stop,
            retry_s=LISTEN_RETRY_S,
        )


async def _first_of(wake: asyncio.Event, stop: asyncio.Event, *, poll_s: float) -> None:
    waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
