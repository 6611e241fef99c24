"""Order e-mails end to end: order commit -> outbox -> RabbitMQ -> notifications service
-> SMTP -> message in Mailpit, against raw aiosmtplib sends of the same e-mail to the
same Mailpit in the same run; and publishing with publisher confirms vs without.

    uv run python -m bench.jobs [--orders 300] [--raw 300] [--publish 2000]

Uses the dev stack's services (services.env) on a schema, Redis prefix and queue prefix
of its own (bench/isolation.py), removed afterwards. Latency is Mailpit's receive time
of each e-mail minus the commit time of its order (same host clock). The relay and one
service run in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

import aio_pika
import httpx
from prometheus_client import REGISTRY

from app.settings import Settings, get_settings
from app.stores import Stores, open_stores
from bench.isolation import bench_settings, bench_stores
from jobs import metrics
from jobs.topology import Topology
from notifications.sender import SmtpConfig, SmtpSender
from storage import orders
from tests.support.jobs import jobs_rig, message_id_of, order_event_ids


def _window() -> tuple[float, float, float]:
    """The record window of this process's service (250 -> ack, jobs.metrics histogram):
    (count, mean s, bucket bound of its p99 s)."""
    name = "polyshop_notifications_record_window_seconds"
    count = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    total = REGISTRY.get_sample_value(f"{name}_sum") or 0.0
    bound = float("inf")
    for le in (*metrics.RECORD_WINDOW_BUCKETS, float("inf")):
        label = "+Inf" if le == float("inf") else str(le)
        if (REGISTRY.get_sample_value(f"{name}_bucket", {"le": label}) or 0.0) >= 0.99 * count:
            bound = le
            break
    return count, total / count if count else 0.0, bound


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _mailpit_created(mailpit: str, message_ids: set[str]) -> dict[str, datetime]:
    """Message-ID -> time Mailpit received it, for the given ids (newest pages first)."""
    found: dict[str, datetime] = {}
    async with httpx.AsyncClient(base_url=mailpit, timeout=30) as http:
        start = 0
        while len(found) < len(message_ids):
            page = (
                await http.get("/api/v1/messages", params={"start": start, "limit": 500})
            ).json()
            if not page["messages"]:
                break
            for m in page["messages"]:
                mid = f"<{m['MessageID']}>"
                if mid in message_ids and mid not in found:
                    found[mid] = datetime.fromisoformat(m["Created"].replace("Z", "+00:00"))
            start += 500
    return found


async def _place(stores: Stores, n: int) -> dict[int, datetime]:
    """`n` one-line orders of one customer and product: order id -> commit time."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO customers (email, name) VALUES (%s, 'Bench') RETURNING id",
            (f"{uuid.uuid4().hex[:10]}@bench.test",),
        )
        customer = (await cur.fetchone())["id"]  # type: ignore[index]
        cur = await conn.execute(
            "INSERT INTO products (sku, name, price_minor, currency, stock)"
            " VALUES ('BENCH-1', 'Bench Chair', 1999, 'USD', 1000000) RETURNING id"
        )
        product = (await cur.fetchone())["id"]  # type: ignore[index]
    committed: dict[int, datetime] = {}
    for _ in range(n):
        async with stores.pg.connection() as conn, conn.transaction():
            change = await orders.place(conn, customer_id=customer, items=[(product, 1)])
        committed[change.order.id] = datetime.now(UTC)
    return committed


async def end_to_end(n: int, base: Settings, *, backlog: bool) -> tuple[float, float, float]:
    """(e-mails/s, p50 and p99 of commit -> Mailpit in s) for `n` orders.

    One at a time (`backlog` false): the relay and the service run while the orders are
    placed, so the rate is the order placement's and the latency is the pipeline's.
    Backlog: the orders are committed first, then the relay and the service start; the
    rate (from their start to Mailpit's receipt of the last e-mail) is the pipeline's
    capacity, and the latency (which includes the wait for the start) is not reported."""
    settings = bench_settings(base, "jobs")
    async with bench_stores(settings), open_stores(settings) as stores:
        committed = await _place(stores, n) if backlog else {}
        started = datetime.now(UTC)
        async with jobs_rig(stores) as rig:
            if not backlog:
                started = datetime.now(UTC)
                committed = await _place(stores, n)
            events = await order_event_ids(stores)
            ids = {message_id_of(events[o], stores): o for o in committed}
            await rig.mailpit.wait_for(list(ids)[-20:], within_s=600)
            await rig.mailpit.wait_for(list(ids), within_s=600)
        created = await _mailpit_created(rig.mailpit.url, set(ids))
    # Mailpit's receive times, not the moment the polling noticed (its search slows as
    # the mailbox fills); same host clock as `started`.
    elapsed = (max(created.values()) - started).total_seconds()
    latencies = [
        (created[m] - committed[o]).total_seconds() for m, o in ids.items() if m in created
    ]
    assert len(latencies) == n, f"{n - len(latencies)} e-mails not found in Mailpit"
    if backlog:
        return n / elapsed, 0.0, 0.0
    return n / elapsed, statistics.median(latencies), _pct(latencies, 0.99)


async def raw_smtp(n: int, host: str, port: int) -> float:
    sender = SmtpSender(SmtpConfig(host, port), connections=4)
    tag = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "shop@polyshop.test", "raw@bench.test", f"raw {i}"
        m["Message-ID"] = f"<raw-{tag}-{i}@bench.test>"
        m.set_content("Hello,\n\nthank you for your order.\n")
        m.add_alternative("<p>Hello, thank you for your order.</p>", subtype="html")
        await sender.send(m)

    started = time.perf_counter()
    sem = asyncio.Semaphore(4)

    async def limited(i: int) -> None:
        async with sem:
            await one(i)

    await asyncio.gather(*(limited(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    await sender.close()
    return n / elapsed


async def publish(n: int, base: Settings, confirms: bool) -> float:
    url = base.broker_url.get_secret_value()
    topo = Topology(prefix=bench_settings(base, "jobs_publish").broker_prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=confirms)
        exchange = await channel.declare_exchange(
            topo.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(  # a quorum queue is durable by definition
            topo.notifications_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, routing_key="#")
        body = b'{"event_id":1,"data":{}}' * 8
        started = time.perf_counter()
        for batch in range(0, n, 200):  # the relay's batch size
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key="order.created",
                    )
                    for _ in range(min(200, n - batch))
                )
            )
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--raw", type=int, default=300)
    parser.add_argument("--publish", type=int, default=2000)
    args = parser.parse_args()
    base = get_settings()
    e2e_rate, p50, p99 = await end_to_end(args.orders, base, backlog=False)
    drain_rate, _, _ = await end_to_end(args.orders, base, backlog=True)
    windows, window_mean, window_p99 = _window()
    raw_rate = await raw_smtp(args.raw, base.smtp_host, base.smtp_port)
    with_confirms = await publish(args.publish, base, True)
    without = await publish(args.publish, base, False)
    print(
        f"end to end, orders one at a time ({args.orders}): {e2e_rate:.1f} e-mails/s, "
        f"commit->Mailpit p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms"
    )
    print(
        f"end to end, a backlog of {args.orders} committed orders drained: "
        f"{drain_rate:.1f} e-mails/s (relay + service start to the last e-mail)"
    )
    print(
        f"duplicate window (250 -> ack) over {windows:.0f} e-mails: mean "
        f"{window_mean * 1000:.2f} ms, p99 <= {window_p99 * 1000:g} ms"
    )
    print(
        f"raw aiosmtplib ({args.raw}, 4 connections): {raw_rate:.1f} e-mails/s; "
        f"end to end / raw = {e2e_rate / raw_rate:.2f} one at a time, "
        f"{drain_rate / raw_rate:.2f} draining the backlog"
    )
    print(
        f"publish {args.publish} persistent to a quorum queue: confirms {with_confirms:.0f}/s, "
        f"no confirms {without:.0f}/s; ratio {with_confirms / without:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
