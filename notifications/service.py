"""The notifications service: its own process, any number of replicas, one queue.

Per message: take an SMTP slot and a Postgres connection, look the event up in
`notification_emails` (recorded: ack, nothing rendered or sent), render, send over SMTP,
record, then ack.
Replicas share the queue (the broker hands each message to one consumer); the record
makes a redelivery (a replica died before its ack) harmless, except in one window: a
crash between the SMTP server's 250 and the record's commit sends the e-mail again on
redelivery (docs/jobs.md measures it).

Failures:
- the SMTP server refuses the address (5xx): recorded as failed, rejected to the dead
  letters at once; never retried by itself.
- SMTP unreachable or a 4xx: the message is held and the send retried with backoff
  (below RabbitMQ's 30-minute ack timeout), then returned to the queue.
- a message that cannot be processed (poison) or an unexpected error: returned to the
  queue after a backoff; the broker dead-letters it after `x-delivery-limit` deliveries,
  while the other messages go on.

Shutdown (SIGTERM): stop consuming, finish the e-mails in flight, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import psycopg
import structlog
from aio_pika.abc import AbstractIncomingMessage
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from jobs import metrics
from jobs.messages import BadMessage, JobMessage
from jobs.topology import Topology, declare
from notifications import repository
from notifications.sender import Refused, SmtpSender, Unavailable
from notifications.templates import Rendered, Renderer

log = structlog.get_logger()

RECONNECT_S = 2.0
HOLD_MAX_S = 20 * 60.0  # below the broker's 30-minute consumer ack timeout


def backoff(attempt: int, base_s: float, cap_s: float = 30.0) -> float:
    return float(min(cap_s, base_s * 2 ** max(0, attempt)))


class NotificationService:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        url: str,
        topology: Topology,
        sender: SmtpSender,
        renderer: Renderer,
        prefetch: int = 16,
        backoff_s: float = 0.5,
        timeout_s: float = 10.0,
        after_send: Callable[[JobMessage], None] | None = None,
    ) -> None:
        self.pool = pool
        self.url = url
        self.topology = topology
        self.sender = sender
        self.renderer = renderer
        self.prefetch = prefetch
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.after_send = after_send  # test hook: runs between the 250 and the record
        self.consuming = asyncio.Event()  # set while a consumer is registered
        self._inflight: set[asyncio.Task[None]] = set()
        # One send at a time per SMTP connection: a handler takes its slot and its
        # Postgres connection before sending, never between the 250 and the record.
        self._slots = asyncio.Semaphore(sender.connections)
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            try:
                await self._consume_until_lost(stop)
            except (aio_pika.exceptions.AMQPError, OSError, TimeoutError) as exc:
                log.warning("notifications.broker_unavailable", error=str(exc)[:200])
            self.consuming.clear()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_S)
        await self.sender.close()
        log.info("notifications.stopped")

    async def _consume_until_lost(self, stop: asyncio.Event) -> None:
        connection = await aio_pika.connect(self.url, timeout=self.timeout_s)
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            _exchange, queue, _dead = await declare(channel, self.topology)
            tag = await queue.consume(self._on_message)
            self.consuming.set()
            log.info("notifications.consuming", queue=queue.name, prefetch=self.prefetch)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if stop.is_set() and not lost.is_set():
                # Graceful: no new deliveries, finish the ones in hand, then close (the
                # unacked rest returns to the queue for another replica).
                with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
                    await queue.cancel(tag)
                await self._drain_inflight()
        finally:
            self.consuming.clear()
            if not connection.is_closed:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
                    await connection.close()
            for task in list(self._inflight):
                task.cancel()  # their channel is gone: the broker redelivers them

    async def _drain_inflight(self) -> None:
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=25)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self.handle(message))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        attempt = _delivery_count(message)
        try:
            job = JobMessage.decode(message.body)
            metrics.CONSUMED.labels(job.event_type).inc()
            await self._process(job, message, attempt)
        except asyncio.CancelledError:
            raise
        except BadMessage as exc:
            metrics.FAILED.labels("poison").inc()
            log.warning("notifications.bad_message", attempt=attempt, error=str(exc)[:200])
            await self._requeue_later(message, attempt)
        except Exception as exc:
            metrics.FAILED.labels("error").inc()
            log.warning(
                "notifications.failed", attempt=attempt, error=f"{type(exc).__name__}: {exc}"
            )
            await self._requeue_later(message, attempt)

    async def _process(
        self, job: JobMessage, message: AbstractIncomingMessage, attempt: int
    ) -> None:
        # Everything that can wait happens before the send: a free SMTP slot, the
        # Postgres connection, the record's check (a redelivered duplicate is acked
        # here, never rendered), the rendering (a template error is poison, nothing
        # sent). After the server's 250 only the record's INSERT (autocommit: one round
        # trip) stands before the ack; a crash there is the one that sends twice
        # (docs/jobs.md).
        async with self._slots, self.pool.connection() as conn:
            # Autocommit: each statement is its own transaction, one round trip (no
            # BEGIN/COMMIT around it), and none stays open across the SMTP exchange.
            await conn.set_autocommit(True)  # idle connection: no round trip
            try:
                if await repository.status(conn, job.event_id) == "sent":
                    metrics.DUPLICATES.inc()
                    await message.ack()
                    return
                await self._send_and_record(job, message, conn, self.renderer.render(job))
            finally:
                # a broken connection cannot be switched back; the pool discards it
                with contextlib.suppress(psycopg.Error):
                    await conn.set_autocommit(False)

    async def _send_and_record(
        self,
        job: JobMessage,
        message: AbstractIncomingMessage,
        conn: AsyncConnection[Any],
        rendered: Rendered,
    ) -> None:
        """Send, record, ack (the record was checked: not sent yet)."""

        async def record(status: repository.Status, error: str | None = None) -> bool:
            return await repository.record(
                conn,
                event_id=job.event_id,
                event_type=job.event_type,
                recipient=rendered.recipient,
                message_id=str(rendered.message["Message-ID"]),
                status=status,
                error=error,
            )

        try:
            await self._send_holding(rendered.message)
        except Refused as exc:
            await record("failed", str(exc)[:2000])
            metrics.FAILED.labels("refused").inc()
            metrics.DEAD_LETTERED.inc()
            log.warning("notifications.refused", event_id=job.event_id, error=str(exc)[:200])
            await message.reject(requeue=False)  # to the dead letters
            return
        # --- the residual window: the 250 is in, the record is not ---
        accepted = time.perf_counter()
        metrics.SENT.inc()
        if self.after_send is not None:
            self.after_send(job)
        first = await record("sent")
        # --- window closed: a redelivery from here on is acked unsent ---
        await message.ack()
        metrics.RECORD_WINDOW.observe(time.perf_counter() - accepted)
        if not first:
            metrics.DUPLICATES.inc()
            log.warning("notifications.sent_twice", event_id=job.event_id)
        log.info("notifications.sent", event_id=job.event_id, event_type=job.event_type)

    async def _send_holding(self, email: Any) -> None:
        """Send, retrying while the server is unavailable, for HOLD_MAX_S at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HOLD_MAX_S
        attempt = 0
        while True:
            try:
                await self.sender.send(email)
                return
            except Unavailable as exc:
                metrics.FAILED.labels("transient").inc()
                if self._stop.is_set() or loop.time() > deadline:
                    raise
                delay = backoff(attempt, self.backoff_s)
                log.warning(
                    "notifications.smtp_unavailable", retry_in_s=delay, error=str(exc)[:200]
                )
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    async def _requeue_later(self, message: AbstractIncomingMessage, attempt: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), backoff(attempt, self.backoff_s))
        await message.nack(requeue=True)
        if attempt + 1 >= self.topology.delivery_limit:
            metrics.DEAD_LETTERED.inc()  # the broker dead-letters it past the limit


def _delivery_count(message: AbstractIncomingMessage) -> int:
    """Earlier deliveries of this message (quorum queues count them)."""
    raw = (message.headers or {}).get("x-delivery-count", 0)
    try:
        return int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
