"""Exchanges and queues, declared identically by the publisher and every consumer.

- `<prefix>events`: durable topic exchange; the routing key is the event type.
- `<prefix>notifications`: quorum queue of the notifications service, bound to the
  event types it e-mails. A message delivered `delivery_limit` times without an ack is
  dead-lettered at-least-once (the broker keeps it until the dead-letter queue
  confirmed it; that strategy needs `x-overflow=reject-publish`).
- `<prefix>events.dlx` -> `<prefix>notifications.dead`: the dead letters, kept until
  `polyshop jobs replay-dead-letters` puts them back.

Every name carries the prefix, so tests (and a second shop on the same broker) never
share a queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

ORDER_CREATED: Final = "order.created"
ORDER_CANCELLED: Final = "order.cancelled"
ORDER_SHIPPED: Final = "order.shipped"
REMINDER_DUE: Final = "membership.reminder_due"

# The outbox event types published to the broker; the others are acknowledged unsent.
PUBLISHED: Final = frozenset({ORDER_CREATED, ORDER_CANCELLED, ORDER_SHIPPED, REMINDER_DUE})
NOTIFICATION_KEYS: Final = tuple(sorted(PUBLISHED))


@dataclass(frozen=True)
class Topology:
    prefix: str = "polyshop."
    delivery_limit: int = 5

    @property
    def exchange(self) -> str:
        return f"{self.prefix}events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}events.dlx"

    @property
    def notifications_queue(self) -> str:
        return f"{self.prefix}notifications"

    @property
    def notifications_dead(self) -> str:
        return f"{self.prefix}notifications.dead"

    def queues(self) -> tuple[str, ...]:
        return (self.notifications_queue, self.notifications_dead)

    def queue_arguments(self) -> dict[str, aio_pika.abc.FieldValue]:
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": self.delivery_limit,
        }


async def declare(
    channel: AbstractChannel, topology: Topology
) -> tuple[AbstractExchange, AbstractQueue, AbstractQueue]:
    """Declare everything (idempotent): (events exchange, notifications queue, dead
    letters). Declaring the queue with the publisher too means no event is published
    to an exchange with nothing bound (the broker would drop it)."""
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dlx = await channel.declare_exchange(
        topology.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead = await channel.declare_queue(
        topology.notifications_dead, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(dlx, routing_key="#")
    queue = await channel.declare_queue(
        topology.notifications_queue, durable=True, arguments=topology.queue_arguments()
    )
    for key in NOTIFICATION_KEYS:
        await queue.bind(exchange, routing_key=key)
    return exchange, queue, dead
