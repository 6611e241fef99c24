"""Order e-mails through the outbox, RabbitMQ and the notifications service, read back
from Mailpit (real broker, real SMTP sink)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY

from app.stores import Stores
from jobs.messages import JobMessage
from jobs.topology import Topology
from notifications.templates import Rendered, Renderer
from storage import orders
from tests.integration.test_orders import insert_product, place
from tests.support.auth import bearer
from tests.support.jobs import bounce_customer, jobs_rig, message_id_of, order_event_ids

pytestmark = pytest.mark.timeout(180)


async def test_one_email_per_order_with_text_and_html(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    auth = await bearer(stores, "customer")
    product = await insert_product(stores, stock=50)
    async with jobs_rig(stores) as rig:
        placed = [
            await place(client, auth, [{"product_id": product, "quantity": 1}]) for _ in range(3)
        ]
        assert all(r.status_code == 201 for r in placed)
        events = await order_event_ids(stores)
        ids = [message_id_of(events[r.json()["id"]], stores) for r in placed]
        counts = await rig.mailpit.wait_for(ids)
        assert set(counts.values()) == {1}
        found = await rig.mailpit.search(f"message-id:{ids[0].strip('<>')}")
        body = await rig.mailpit.message(found[0]["ID"])
        order_id = placed[0].json()["id"]
        assert f"#{order_id}" in body["Subject"]
        assert "Test Chair" in body["Text"] and "<strong>" in body["HTML"]
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) AS n FROM notification_emails GROUP BY 1")
        assert {r["status"]: r["n"] for r in await cur.fetchall()} == {"sent": 3}


async def test_a_redelivered_duplicate_is_acked_unrendered_and_unsent(
    client: httpx.AsyncClient, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[int] = []
    real_render = Renderer.render

    def render(self: Renderer, job: JobMessage) -> Rendered:
        rendered.append(job.event_id)
        return real_render(self, job)

    monkeypatch.setattr(Renderer, "render", render)
    auth = await bearer(stores, "customer")
    product = await insert_product(stores, stock=5)
    item = [{"product_id": product, "quantity": 1}]
    early = await place(client, auth, item)
    [event_id] = (await order_event_ids(stores)).values()
    # as if a service had sent and recorded it and died before its ack: the broker
    # delivers it again (here: for the first time, the relay starts only now)
    duplicate = message_id_of(event_id, stores)
    async with stores.pg.connection() as conn:
        await conn.execute(
            "INSERT INTO notification_emails (event_id, event_type, recipient, message_id,"
            " status) VALUES (%s, 'order.created', 'x@example.com', %s, 'sent')",
            (event_id, duplicate),
        )
    before = REGISTRY.get_sample_value("polyshop_notifications_duplicates_skipped_total") or 0
    async with jobs_rig(stores) as rig:
        later = await place(client, auth, item)  # the barrier: after the duplicate
        assert (early.status_code, later.status_code) == (201, 201)
        barrier = (await order_event_ids(stores))[later.json()["id"]]
        await rig.mailpit.wait_for([message_id_of(barrier, stores)])
        assert await rig.mailpit.count(duplicate) == 0
    assert rendered == [barrier]  # the duplicate was acked before any rendering
    after = REGISTRY.get_sample_value("polyshop_notifications_duplicates_skipped_total") or 0
    assert after == before + 1


async def test_a_rolled_back_order_sends_nothing(client: httpx.AsyncClient, stores: Stores) -> None:
    auth = await bearer(stores, "customer")
    product = await insert_product(stores, stock=5)
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT customer_id FROM api_keys WHERE customer_id IS NOT NULL")
        row = await cur.fetchone()
        assert row is not None
        with contextlib.suppress(RuntimeError):
            async with conn.transaction():
                await orders.place(conn, customer_id=row["customer_id"], items=[(product, 1)])
                raise RuntimeError("roll back")
    async with jobs_rig(stores) as rig:
        # a committed order afterwards is the barrier: once its e-mail is there, the relay
        # and the service have seen everything before it
        committed = await place(client, auth, [{"product_id": product, "quantity": 1}])
        assert committed.status_code == 201
        events = await order_event_ids(stores)
        assert list(events) == [committed.json()["id"]]
        await rig.mailpit.wait_for([message_id_of(events[committed.json()["id"]], stores)])
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM notification_emails")
        assert (await cur.fetchone())["n"] == 1  # type: ignore[index]


async def test_refused_address_is_recorded_failed_and_dead_lettered(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    product = await insert_product(stores, stock=5)
    bounce_id = await bounce_customer(stores)
    bounce = await bearer(stores, "customer", customer_id=bounce_id)
    good = await bearer(stores, "customer")
    async with jobs_rig(stores) as rig:
        refused = await place(client, bounce, [{"product_id": product, "quantity": 1}])
        fine = await place(client, good, [{"product_id": product, "quantity": 1}])
        events = await order_event_ids(stores)
        await rig.mailpit.wait_for([message_id_of(events[fine.json()["id"]], stores)])
        dead = await _wait_dead_letters(stores, 1)
        assert json.loads(dead[0])["event_id"] == events[refused.json()["id"]]
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT status, error FROM notification_emails WHERE event_id = %s",
            (events[refused.json()["id"]],),
        )
        row = await cur.fetchone()
    assert row is not None and row["status"] == "failed" and "550" in row["error"]


async def test_poison_message_is_dead_lettered_after_the_limit_while_work_goes_on(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    auth = await bearer(stores, "customer")
    product = await insert_product(stores, stock=5)
    topo = Topology(stores.settings.broker_prefix, stores.settings.broker_delivery_limit)
    async with jobs_rig(stores) as rig:
        connection = await aio_pika.connect(stores.settings.broker_url.get_secret_value())
        async with connection:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(b"{not json", message_id="poison"),
                routing_key=topo.notifications_queue,
            )
        placed = await place(client, auth, [{"product_id": product, "quantity": 1}])
        events = await order_event_ids(stores)
        await rig.mailpit.wait_for([message_id_of(events[placed.json()["id"]], stores)])
        dead = await _wait_dead_letters(stores, 1, within_s=90)
        assert dead == [b"{not json"]


async def _wait_dead_letters(stores: Stores, n: int, within_s: float = 60) -> list[bytes]:
    """Read (and ack) `n` messages from the dead-letter queue."""
    topo = Topology(stores.settings.broker_prefix, stores.settings.broker_delivery_limit)
    connection = await aio_pika.connect(stores.settings.broker_url.get_secret_value())
    bodies: list[bytes] = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topo.notifications_dead, passive=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while len(bodies) < n and loop.time() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            bodies.append(message.body)
            await message.ack()
    assert len(bodies) == n, f"{len(bodies)} dead letters after {within_s}s, expected {n}"
    return bodies
