"""Operating the jobs against real RabbitMQ and Mailpit: `polyshop jobs status`, dead-letter
replay, every metric of docs/jobs.md, and a graceful (SIGTERM) stop of the notifications
service in the middle of a burst."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from typer.testing import CliRunner, Result

from app.commands.jobs import jobs_cli
from app.jobs import run_membership_sweeps, topology
from app.settings import get_settings
from app.stores import Stores
from memberships.clock import FixedClock, system_clock
from memberships.routes import current_time
from tests.integration.test_orders import insert_product, place
from tests.support.auth import bearer
from tests.support.jobs import (
    bounce_customer,
    jobs_rig,
    message_id_of,
    order_event_ids,
    service_mid_burst,
)

pytestmark = pytest.mark.timeout(300)


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def _jobs(stores: Stores, *args: str) -> Result:
    """`polyshop jobs ...` in a thread (it runs its own event loop), on this test's
    schema and queues; in this process, so the gauges it sets are readable here."""
    s = stores.settings
    env = {
        "POLYSHOP_DATABASE_URL": s.database_url,
        "POLYSHOP_DATABASE_SCHEMA": s.database_schema,
        "POLYSHOP_BROKER_URL": s.broker_url.get_secret_value(),
        "POLYSHOP_BROKER_PREFIX": s.broker_prefix,
    }

    def invoke() -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(jobs_cli, list(args), env=env)
        finally:
            get_settings.cache_clear()

    result = await asyncio.to_thread(invoke)
    assert result.exit_code == 0, result.output
    return result


def _queue_line(output: str, queue: str) -> str:
    [line] = [ln for ln in output.splitlines() if ln.split()[1:2] == [queue]]
    return line


async def _refused_and_fine_orders(client: httpx.AsyncClient, stores: Stores) -> tuple[int, int]:
    """Place one order whose address Mailpit refuses and one it accepts; their event ids."""
    product = await insert_product(stores, stock=10)
    bounce_id = await bounce_customer(stores)
    refused = await place(
        client,
        await bearer(stores, "customer", customer_id=bounce_id),
        [{"product_id": product, "quantity": 1}],
    )
    fine = await place(
        client, await bearer(stores, "customer"), [{"product_id": product, "quantity": 1}]
    )
    assert (refused.status_code, fine.status_code) == (201, 201)
    events = await order_event_ids(stores)
    return events[refused.json()["id"]], events[fine.json()["id"]]


async def _wait_ready(stores: Stores, queue: str, n: int, within_s: float = 60) -> str:
    """`jobs status` once `queue` shows `n` ready messages; its output."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        out = (await _jobs(stores, "status")).output
        if f"ready={n} " in _queue_line(out, queue) or loop.time() > deadline:
            return out
        await asyncio.sleep(0.5)


async def test_jobs_status_and_dead_letter_replay(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    topo = topology(stores.settings)
    auth = await bearer(stores, "customer")
    # a reminder due now and not yet swept (no worker runs in this test)
    soon = system_clock() + timedelta(days=3) - timedelta(hours=1)
    member = await client.post(
        "/memberships", json={"plan": "plus-monthly", "renews_at": soon.isoformat()}, headers=auth
    )
    assert member.status_code == 201, member.text
    async with jobs_rig(stores) as rig:
        refused, fine = await _refused_and_fine_orders(client, stores)
        await rig.mailpit.wait_for([message_id_of(fine, stores)])
        out = await _wait_ready(stores, topo.notifications_dead, 1)
        # the service consumes the queue: one consumer, nothing waiting
        assert "ready=0" in _queue_line(out, topo.notifications_queue)
        assert "consumers=1" in _queue_line(out, topo.notifications_queue)
    assert "ready=1 " in _queue_line(out, topo.notifications_dead)
    assert "due reminders   1 " in out
    assert "e-mails         failed=1 sent=1" in out
    assert "outbox (jobs)   pending=0 dead-lettered=0" in out
    # the gauges `jobs status` sets
    assert _metric("polyshop_jobs_queue_depth", {"queue": topo.notifications_dead}) == 1
    assert _metric("polyshop_jobs_due_reminders") == 1

    # replay, with no service running: the dead letter is back in the notifications queue
    replayed = await _jobs(stores, "replay-dead-letters")
    assert replayed.output.strip() == "replayed 1 dead letters"
    out = (await _jobs(stores, "status")).output
    assert "ready=1 " in _queue_line(out, topo.notifications_queue)
    assert "ready=0 " in _queue_line(out, topo.notifications_dead)
    assert (await _jobs(stores, "replay-dead-letters")).output.strip() == (
        "replayed 0 dead letters"
    )
    # a service takes it: the address is still refused, so it is tried once more (the
    # failed record is overwritten) and dead-lettered again, not retried forever
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT recorded_at FROM notification_emails WHERE event_id = %s", (refused,)
        )
        first_try = (await cur.fetchone())["recorded_at"]  # type: ignore[index]
    async with jobs_rig(stores):
        out = await _wait_ready(stores, topo.notifications_dead, 1)
    assert "ready=1 " in _queue_line(out, topo.notifications_dead)
    assert "ready=0 " in _queue_line(out, topo.notifications_queue)
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT status, recorded_at FROM notification_emails WHERE event_id = %s", (refused,)
        )
        row = await cur.fetchone()
    assert row is not None and row["status"] == "failed" and row["recorded_at"] > first_try


async def test_metrics_count_each_step(
    app: FastAPI, client: httpx.AsyncClient, stores: Stores
) -> None:
    names = {
        "published": ("polyshop_jobs_published_total", {"event_type": "order.created"}),
        "confirmed": ("polyshop_jobs_confirmed_total", {}),
        "consumed": ("polyshop_notifications_consumed_total", {"event_type": "order.created"}),
        "sent": ("polyshop_notifications_sent_total", {}),
        "refused": ("polyshop_notifications_failed_total", {"reason": "refused"}),
        "dead_lettered": ("polyshop_notifications_dead_lettered_total", {}),
        "duplicates": ("polyshop_notifications_duplicates_skipped_total", {}),
        "windows": ("polyshop_notifications_record_window_seconds_count", {}),
    }
    before = {k: _metric(n, labels) for k, (n, labels) in names.items()}
    async with jobs_rig(stores) as rig:
        _refused, fine = await _refused_and_fine_orders(client, stores)
        await rig.mailpit.wait_for([message_id_of(fine, stores)])
        topo = topology(stores.settings)
        await _wait_ready(stores, topo.notifications_dead, 1)
    delta = {k: _metric(n, labels) - before[k] for k, (n, labels) in names.items()}
    assert delta == {
        "published": 2,
        "confirmed": 2,
        "consumed": 2,
        "sent": 1,
        "refused": 1,
        "dead_lettered": 1,
        "duplicates": 0,
        "windows": 1,  # the sent one's 250 -> ack (the refused one has no window)
    }

    # reminder lag: the worker task's sweep moves a reminder 90 s late into the outbox
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    clock = FixedClock(t0)
    app.dependency_overrides[current_time] = clock
    member = await client.post(
        "/memberships",
        json={"plan": "plus-monthly", "renews_at": (t0 + timedelta(days=10)).isoformat()},
        headers=await bearer(stores, "customer"),
    )
    assert member.status_code == 201, member.text
    clock.now = t0 + timedelta(days=7, seconds=90)
    stop = asyncio.Event()
    task = asyncio.create_task(run_membership_sweeps(stores, stop, clock=clock))
    try:
        for _ in range(200):
            if _metric("polyshop_jobs_reminder_lag_seconds") == pytest.approx(90):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert _metric("polyshop_jobs_reminder_lag_seconds") == pytest.approx(90)


async def test_sigterm_mid_burst_finishes_in_flight_and_loses_nothing(
    client: httpx.AsyncClient, stores: Stores, tmp_path: Path
) -> None:
    log = tmp_path / "notifications.log"
    async with service_mid_burst(client, stores, log, orders=30, started=3) as burst:
        burst.first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(burst.first.wait, 60)
        assert code == 0, log.read_text()
        assert "notifications.stopped" in log.read_text()
        # what it finished is recorded, in Mailpit once, and acked (not redelivered)
        async with stores.pg.connection() as conn:
            cur = await conn.execute(
                "SELECT event_id FROM notification_emails WHERE status = 'sent'"
            )
            done = [int(r["event_id"]) for r in await cur.fetchall()]
        assert len(done) >= 3
        for event_id in done:
            assert await burst.mailpit.count(message_id_of(event_id, stores)) == 1
        # the rest waits in the queue for another replica, which finishes the burst
        burst.start_another()
        counts = await burst.mailpit.wait_for(burst.ids, within_s=180)
    print(f"SIGTERM mid-burst: {len(done)} finished by the first service, 30 in all")
    assert set(counts.values()) == {1}, counts  # nothing lost, nothing sent twice
