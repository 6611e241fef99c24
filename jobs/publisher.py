"""The outbox consumer "jobs": publishes order events and due reminders to RabbitMQ.

Runs inside the outbox relay: a batch is acknowledged in Postgres only after the
broker confirmed every message of it (publisher confirms), so a broker that is down
or refuses a message leaves the batch pending and the relay retries it with backoff.
An event is published only once its transaction committed (it is in the outbox), and
possibly more than once (a crash between the confirm and the outbox ack): consumers
deduplicate on `message_id`, which is the outbox event id.

Each message carries what its e-mail needs (recipient, order lines), read when it is
published, so the notifications service reads nothing of the shop's tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from psycopg_pool import AsyncConnectionPool

from jobs import metrics
from jobs.messages import CONTENT_TYPE, JobMessage, iso
from jobs.topology import PUBLISHED, Topology, declare
from storage import customers
from storage import orders as order_store
from storage.customers import Customer
from storage.orders import Order
from storage.outbox import OutboxEvent

log = structlog.get_logger()

CONSUMER_NAME = "jobs"


class BrokerPublisher:
    name = CONSUMER_NAME

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        url: str,
        topology: Topology,
        namespace: str,
        confirms: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        self.pool = pool
        self.url = url
        self.topology = topology
        self.namespace = namespace
        self.confirms = confirms
        self.timeout_s = timeout_s
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def apply(self, events: Sequence[OutboxEvent]) -> None:
        wanted = [e for e in events if e.event_type in PUBLISHED]
        if not wanted:
            return
        messages = await self._messages(wanted)
        exchange = await self._ready_exchange()
        try:
            await asyncio.gather(
                *(
                    exchange.publish(
                        self._amqp(m), routing_key=m.event_type, timeout=self.timeout_s
                    )
                    for m in messages
                )
            )
        except BaseException:
            metrics.PUBLISH_FAILED.inc()
            await self.close()  # the next batch starts on a fresh connection
            raise
        for m in messages:
            metrics.PUBLISHED.labels(m.event_type).inc()
        if self.confirms:
            metrics.CONFIRMED.inc(len(messages))

    def _amqp(self, message: JobMessage) -> aio_pika.Message:
        return aio_pika.Message(
            message.encode(),
            message_id=str(message.event_id),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=message.event_type,
            timestamp=datetime.now(UTC),
            headers={"x-polyshop-namespace": message.namespace},
        )

    async def _messages(self, events: Sequence[OutboxEvent]) -> list[JobMessage]:
        async with self.pool.connection() as conn:
            orders = await order_store.get_many(
                conn, [e.aggregate_id for e in events if e.aggregate == "order"]
            )
            buyers = await customers.get_many(conn, (o.customer_id for o in orders.values()))
        return [
            JobMessage(
                event_id=e.id,
                event_type=e.event_type,
                aggregate=e.aggregate,
                aggregate_id=e.aggregate_id,
                version=e.version,
                occurred_at=iso(e.created_at),
                namespace=self.namespace,
                data=_data(e, orders, buyers),
            )
            for e in events
        ]

    async def _ready_exchange(self) -> AbstractExchange:
        async with self._lock:
            if self._exchange is not None and self._connection and not self._connection.is_closed:
                return self._exchange
            await self._close_unlocked()
            connection = await aio_pika.connect(self.url, timeout=self.timeout_s)
            try:
                channel = await connection.channel(
                    publisher_confirms=self.confirms, on_return_raises=True
                )
                exchange, _queue, _dead = await declare(channel, self.topology)
            except BaseException:
                await connection.close()
                raise
            self._connection, self._channel, self._exchange = connection, channel, exchange
            log.info("jobs.publisher_connected", exchange=self.topology.exchange)
            return exchange

    async def close(self) -> None:
        async with self._lock:
            await self._close_unlocked()

    async def _close_unlocked(self) -> None:
        connection, self._connection, self._channel, self._exchange = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception as exc:  # already broken: nothing to keep
                log.debug("jobs.publisher_close_failed", error=str(exc)[:200])


def _data(
    event: OutboxEvent, orders: dict[int, Order], buyers: dict[int, Customer]
) -> dict[str, Any]:
    """The event's payload plus the order and its customer for order events (reminder
    events carry theirs already, written by the sweep). The batch's orders and customers
    are read together (`_messages`: three queries per batch, not three per event)."""
    data = dict(event.payload)
    order = orders.get(event.aggregate_id) if event.aggregate == "order" else None
    if order is None:
        return data
    customer = buyers.get(order.customer_id)
    data["order"] = {
        "id": order.id,
        "status": order.status,
        "currency": order.currency,
        "total_minor": order.total_minor,
        "created_at": iso(order.created_at),
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
                "line_total_minor": line.line_total_minor,
            }
            for line in order.lines
        ],
    }
    if customer is not None:
        data["customer"] = {"email": customer.email, "name": customer.name}
    return data
