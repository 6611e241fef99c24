"""The jobs' test rig: the outbox relay with only the broker publisher, the notifications
service in-process, and Mailpit's REST API to read back what was sent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from app.jobs import build_notification_service, jobs_consumer
from app.relay import Relay
from app.settings import Settings
from app.stores import Stores
from jobs.publisher import BrokerPublisher
from jobs.topology import Topology
from notifications.service import NotificationService


def _stack_mailpit_url() -> str:
    """The dev stack's Mailpit (as `make test` runs pytest: the addresses are not in the
    environment; the stack instance is the one the environment selects)."""
    import devstack

    return devstack.service_env()["POLYSHOP_MAILPIT_URL"]


def until_true(within_s: float, every_s: float = 0.25) -> AsyncRetrying:
    """Retry the block while its assertions fail, for `within_s` at most."""
    return AsyncRetrying(
        stop=stop_after_delay(within_s),
        wait=wait_fixed(every_s),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    )


class Mailpit:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or os.environ.get("POLYSHOP_MAILPIT_URL") or _stack_mailpit_url()
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)

    async def search(self, query: str) -> list[dict[str, Any]]:
        response = await self.http.get("/api/v1/search", params={"query": query, "limit": 1000})
        response.raise_for_status()
        return list(response.json()["messages"])

    async def count(self, message_id: str) -> int:
        return len(await self.search(f"message-id:{message_id.strip('<>')}"))

    async def message(self, mailpit_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/message/{mailpit_id}")
        response.raise_for_status()
        return dict(response.json())

    async def wait_for(self, message_ids: list[str], within_s: float = 60) -> dict[str, int]:
        """Wait until every Message-ID arrived at least once; their counts."""
        counts: dict[str, int] = {}
        async for attempt in until_true(within_s):
            with attempt:
                for mid in message_ids:
                    if counts.get(mid, 0) == 0:
                        counts[mid] = await self.count(mid)
                missing = [m for m, n in counts.items() if n == 0]
                assert not missing, f"{len(missing)} e-mails not in Mailpit, e.g. {missing[:3]}"
        return {m: await self.count(m) for m in message_ids}

    async def close(self) -> None:
        await self.http.aclose()


@dataclass
class Rig:
    stores: Stores
    relay: Relay
    publisher: BrokerPublisher
    service: NotificationService
    mailpit: Mailpit


async def _stop(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    stop.set()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 40)


@contextlib.asynccontextmanager
async def jobs_rig(stores: Stores, *, service: bool = True) -> AsyncIterator[Rig]:
    """Relay (publisher only) and, with `service`, one notifications service."""
    publisher = jobs_consumer(stores)
    relay = Relay(stores, [publisher])
    notifier = build_notification_service(stores.settings, stores.pg)
    notifier.backoff_s = 0.2
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop))]
    if service:
        tasks.append(asyncio.create_task(notifier.run(stop)))
    mailpit = Mailpit()
    try:
        await asyncio.wait_for(relay.listening.wait(), 30)
        if service:
            await asyncio.wait_for(notifier.consuming.wait(), 30)
        yield Rig(stores, relay, publisher, notifier, mailpit)
    finally:
        await _stop(stop, tasks)
        await publisher.close()
        await mailpit.close()


async def wait_queues_on_disk(stores: Stores, within_s: float = 60) -> None:
    """Wait until Ra's directory file (`names.dets`) holds this run's quorum queues.

    Measured on RabbitMQ 3.10.8 (docs/jobs.md): a node killed (`kill -9`) before Ra's
    directory saved a new queue's registration restarts with that queue orphaned: its
    log is on disk but unregistered, so the node starts an empty member that never
    elects itself ("leader not known"), and the confirmed messages stay unreachable.
    Ra saves the directory within about half a second when the machine is idle. In
    production the queues exist long before a crash; a test that declares fresh
    queues waits for that save, as any queue that lived more than a moment has had.
    """
    import devstack

    topology = Topology(stores.settings.broker_prefix, stores.settings.broker_delivery_limit)
    names = devstack.rabbitmq_quorum_dir() / "names.dets"
    wanted = [f"%2F_{queue}".encode() for queue in topology.queues()]
    async for attempt in until_true(within_s):
        with attempt:
            saved = names.read_bytes()
            missing = [w for w in wanted if not _has_atom(saved, w)]
            assert not missing, f"not yet in {names}: {missing}"


def _has_atom(data: bytes, name: bytes) -> bool:
    """`name` as an atom in Erlang's external term format (a queue's name is a prefix
    of its dead-letter queue's, so the length must match too)."""
    n = len(name)
    short = [bytes([tag, n]) + name for tag in (115, 119)]  # SMALL_ATOM(_UTF8)_EXT
    long = [bytes([tag]) + n.to_bytes(2, "big") + name for tag in (100, 118)]  # ATOM(_UTF8)
    return any(form in data for form in short + long)


def service_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """`polyshop notifications` as its own process, on the test's schema and queues."""
    env = {
        **os.environ,
        "POLYSHOP_DATABASE_URL": settings.database_url,
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
        "POLYSHOP_BROKER_URL": settings.broker_url.get_secret_value(),
        "POLYSHOP_BROKER_PREFIX": settings.broker_prefix,
        "POLYSHOP_SMTP_HOST": settings.smtp_host,
        "POLYSHOP_SMTP_PORT": str(settings.smtp_port),
        "POLYSHOP_NOTIFICATIONS_METRICS_PORT": "0",
        "POLYSHOP_ENVIRONMENT": "test",
    }
    polyshop = str(Path(sys.executable).parent / "polyshop")
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [polyshop, "notifications"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_processes(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(30)


@dataclass
class Burst:
    """A burst of orders being e-mailed by a `polyshop notifications` process."""

    settings: Settings
    log: Path
    mailpit: Mailpit
    first: subprocess.Popen[bytes]
    second: subprocess.Popen[bytes] | None = None
    ids: list[str] = field(default_factory=list)  # the orders' e-mail Message-IDs

    def start_another(self) -> None:
        """A second service process, to finish the burst."""
        self.second = service_process(self.settings, self.log)


@contextlib.asynccontextmanager
async def service_mid_burst(
    client: httpx.AsyncClient, stores: Stores, log: Path, *, orders: int, started: int
) -> AsyncIterator[Burst]:
    """`orders` orders e-mailed by a service process of their own (relay in process),
    yielded once the first `started` e-mails arrived: the service is mid-burst. Both
    service processes are stopped on exit."""
    burst = Burst(stores.settings, log, Mailpit(), service_process(stores.settings, log))
    try:
        async with jobs_rig(stores, service=False):
            burst.ids = await place_burst(client, stores, orders)
            await burst.mailpit.wait_for(burst.ids[:started], within_s=120)
            yield burst
    finally:
        stop_processes(burst.first, burst.second)
        await burst.mailpit.close()


async def bounce_customer(stores: Stores) -> int:
    """A customer whose address the dev Mailpit refuses (any `*.invalid` recipient)."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO customers (email, name) VALUES ('nobody@bounce.invalid', 'Bounce')"
            " RETURNING id"
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def place_burst(client: httpx.AsyncClient, stores: Stores, n: int) -> list[str]:
    """`n` orders of one new customer through the API; their e-mails' Message-IDs."""
    from tests.integration.test_orders import insert_product, place
    from tests.support.auth import bearer

    auth = await bearer(stores, "customer")
    product = await insert_product(stores, stock=n)
    item = [{"product_id": product, "quantity": 1}]
    placed = [await place(client, auth, item) for _ in range(n)]
    assert all(r.status_code == 201 for r in placed)
    events = await order_event_ids(stores)
    return [message_id_of(events[r.json()["id"]], stores) for r in placed]


def message_id_of(event_id: int, stores: Stores) -> str:
    from notifications.templates import message_id

    s = stores.settings
    return message_id(event_id, s.database_schema, s.mail_domain)


async def order_event_ids(stores: Stores, event_type: str = "order.created") -> dict[int, int]:
    """order id -> outbox event id of `event_type`."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT aggregate_id, id FROM outbox WHERE event_type = %s", (event_type,)
        )
        return {int(r["aggregate_id"]): int(r["id"]) for r in await cur.fetchall()}


async def new_membership(
    client: httpx.AsyncClient, auth: dict[str, str], renews: datetime
) -> datetime:
    """A plus-monthly membership renewing at `renews`; when its reminder is due."""
    created = await client.post(
        "/memberships", json={"plan": "plus-monthly", "renews_at": renews.isoformat()}, headers=auth
    )
    assert created.status_code == 201, created.text
    return datetime.fromisoformat(created.json()["reminder_due_at"])
