"""The operator's view of the broker side: queue depths and consumers, dead-letter
replay, and the readiness ping. AMQP only (passive declares), so it needs no
management-plugin credentials."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel

from jobs.topology import Topology, declare


@dataclass(frozen=True)
class QueueStats:
    name: str
    ready: int  # messages waiting (unacked ones are not counted by AMQP)
    consumers: int


@contextlib.asynccontextmanager
async def _channel(url: str, timeout_s: float) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(url, timeout=timeout_s)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def ping(url: str, timeout_s: float = 2.0) -> None:
    """Open and close an AMQP connection (the broker line of /readyz)."""
    connection = await aio_pika.connect(url, timeout=timeout_s)
    await connection.close()


async def queue_stats(url: str, topology: Topology, timeout_s: float = 10.0) -> list[QueueStats]:
    async with _channel(url, timeout_s) as channel:
        await declare(channel, topology)  # a fresh broker shows empty queues, not errors
        stats = []
        for name in topology.queues():
            queue = await channel.declare_queue(name, passive=True)
            result = queue.declaration_result
            stats.append(QueueStats(name, result.message_count or 0, result.consumer_count or 0))
        return stats


async def replay_dead_letters(
    url: str, topology: Topology, *, limit: int | None = None, timeout_s: float = 10.0
) -> int:
    """Move dead letters back to the notifications queue (each confirmed by the broker
    before its dead letter is acked: none is lost, one may be copied twice if this
    crashes in between, which the service's record absorbs). Returns how many moved."""
    moved = 0
    async with _channel(url, timeout_s) as channel:
        await declare(channel, topology)
        dead = await channel.declare_queue(topology.notifications_dead, passive=True)
        while limit is None or moved < limit:
            message = await dead.get(fail=False, no_ack=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
            headers.update(
                {k: v for k, v in (message.headers or {}).items() if k == "x-polyshop-namespace"}
            )
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    message_id=message.message_id,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    type=message.type,
                    timestamp=message.timestamp,
                    headers=headers,
                ),
                routing_key=topology.notifications_queue,
                timeout=timeout_s,
            )
            await message.ack()
            moved += 1
    return moved


async def delete_topology(url: str, topology: Topology, timeout_s: float = 10.0) -> None:
    """Remove the queues and exchanges of `topology` (tests and benchmarks clean up)."""
    async with _channel(url, timeout_s) as channel:
        for queue in topology.queues():
            await channel.queue_delete(queue)
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            await channel.exchange_delete(exchange)
