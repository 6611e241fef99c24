"""Restore drill: dump the test's schema, make writes (product edits, a new product, an
order), restore the dump, run the documented procedure (docs/operations.md, "Restore"):
the cache, the search index and the analytical copy follow Postgres back in time, and
nothing serves the lost future. Prints how long the procedure took. The jobs: a reminder
swept in the lost future comes back scheduled and is swept once (two workers at once),
under a new event id, and a new order under an id the lost future did not use
(`polyshop after-restore`)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from fastapi import FastAPI

from app.commands.cache import flush_cache
from app.commands.restore import restore_ids
from app.etl_schedule import etl_job
from app.settings import Settings
from app.stores import PgPool, Stores
from memberships.clock import FixedClock
from memberships.routes import current_time
from memberships.tasks import sweep_once
from search.reindex import reindex
from tests.integration.test_cache import new_product, version_of
from tests.support.auth import bearer
from tests.support.jobs import new_membership
from tests.support.search import consumer_for, drain, index_versions, pg_versions

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def run(*command: str) -> None:
    subprocess.run(command, check=True)


async def dump_schema(settings: Settings, tmp_path: Path) -> Path:
    dump = tmp_path / "shop.dump"
    url, schema = settings.database_url, settings.database_schema
    await asyncio.to_thread(run, "pg_dump", "-Fc", "-n", schema, "-f", str(dump), url)
    return dump


async def restore_schema(settings: Settings, dump: Path, *pools: PgPool) -> None:
    """Restore the dump as an operator would: the schema is replaced."""
    url = settings.database_url
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA "{settings.database_schema}" CASCADE')
    await asyncio.to_thread(run, "pg_restore", "--no-owner", "-d", url, str(dump))
    for pool in pools:
        await pool.check()  # pooled sessions are idle: they hold no lock on the schema


def analytical_products(settings: Settings) -> dict[int, int]:
    with etl_job(settings).store.connect_readonly() as duck:
        rows = duck.execute("SELECT id, version FROM products").fetchall()
    return {int(i): int(v) for i, v in rows}


def analytical_order_lines(settings: Settings) -> set[tuple[int, int, int]]:
    with etl_job(settings).store.connect_readonly() as duck:
        rows = duck.execute("SELECT order_id, product_id, quantity FROM order_lines").fetchall()
    return {(int(o), int(p), int(q)) for o, p, q in rows}


def analytical_orders(settings: Settings) -> int:
    with etl_job(settings).store.connect_readonly() as duck:
        row = duck.execute("SELECT count(*) FROM orders").fetchone()
    return int(row[0]) if row else 0


async def test_restore_drill_derived_stores_follow_postgres_back_in_time(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, stores: Stores,
    tmp_path: Path,
) -> None:  # fmt: skip
    admin = await bearer(stores, "admin")
    customer = await bearer(stores, "customer")
    kept = await new_product(client, admin, "KEPT")
    edited = await new_product(client, admin, "EDITED")
    await reindex(stores.pg, stores.search, settings.search_index_prefix)
    await asyncio.to_thread(etl_job(settings).run, "full", None)
    assert await version_of(client, edited) == 1  # cached

    dump = await dump_schema(settings, tmp_path)

    # the future that the restore will lose
    for stock in (5, 6):
        r = await client.patch(f"/products/{edited}", json={"stock": stock}, headers=admin)
        assert r.status_code == 200
    future = await new_product(client, admin, "FUTURE")
    order = await client.post(
        "/orders",
        json={"items": [{"product_id": edited, "quantity": 1}]},
        headers={**customer, "Idempotency-Key": "drill-1"},
    )
    assert order.status_code == 201, order.text
    lost_order = int(order.json()["id"])
    await drain(stores, consumer_for(stores))
    await asyncio.to_thread(etl_job(settings).run, "incremental", None)
    assert await version_of(client, edited) >= 3  # cached, from the future
    assert (await index_versions(stores))[future] >= 1
    assert future in analytical_products(settings) and analytical_orders(settings) == 1

    await restore_schema(settings, dump, stores.pg, app.state.stores.pg)

    started = time.monotonic()
    next_ids = await restore_ids(settings)  # first: until then new rows reuse lost ids
    await flush_cache(settings)
    await reindex(stores.pg, stores.search, settings.search_index_prefix)
    await asyncio.to_thread(etl_job(settings).run, "full", None)
    elapsed = time.monotonic() - started
    print(f"\nrestore procedure: derived stores converged in {elapsed:.2f} s")

    # nothing serves the lost future
    assert await version_of(client, edited) == 1  # the version went backwards
    assert await version_of(client, kept) == 1
    assert (await client.get(f"/products/{future}")).status_code == 404
    assert await index_versions(stores) == await pg_versions(stores) == {kept: 1, edited: 1}
    assert analytical_products(settings) == {kept: 1, edited: 1}
    assert analytical_orders(settings) == 0
    # and the restored shop is writable and cached again, versions moving on from there
    r = await client.patch(f"/products/{edited}", json={"stock": 9}, headers=admin)
    assert r.status_code == 200 and r.json()["version"] == 2
    assert await version_of(client, edited) == 2
    # a new order does not reuse the lost order's id (its e-mail went out, its lines were
    # in the analytical copy), and the copy holds it with its own line only
    assert next_ids["orders"] > lost_order and next_ids["products"] > future
    again = await client.post(
        "/orders",
        json={"items": [{"product_id": edited, "quantity": 2}]},  # stock 9 since the patch
        headers={**customer, "Idempotency-Key": "drill-1"},  # the key went back too
    )
    assert again.status_code == 201, again.text
    new_order = int(again.json()["id"])
    assert new_order >= next_ids["orders"] > lost_order
    await asyncio.to_thread(etl_job(settings).run, "incremental", None)
    assert analytical_order_lines(settings) == {(new_order, edited, 2)}


async def test_restore_drill_jobs_a_reminder_comes_back_and_is_swept_once_under_a_new_id(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, stores: Stores,
    tmp_path: Path,
) -> None:  # fmt: skip
    clock = FixedClock(T0)
    app.dependency_overrides[current_time] = clock
    auth = await bearer(stores, "customer")
    renews = T0 + timedelta(days=30)
    due = await new_membership(client, auth, renews)
    days = settings.membership_reminder_days
    dump = await dump_schema(settings, tmp_path)

    # the lost future: the reminder was swept (and its e-mail went out with its event id)
    clock.now = due + timedelta(minutes=5)
    assert (await sweep_once(stores.pg, reminder_days=days, clock=clock)).reminders == 1
    [lost] = await reminder_event_ids(stores)

    await restore_schema(settings, dump, stores.pg, app.state.stores.pg)
    assert await reminder_event_ids(stores) == []  # the reminder is scheduled again
    next_id = (await restore_ids(settings))["outbox"]
    assert next_id > lost

    # two workers sweep at once: the reminder that came back is enqueued once, not twice
    both = await asyncio.gather(
        *(sweep_once(stores.pg, reminder_days=days, clock=clock) for _ in range(2))
    )
    assert sorted(r.reminders for r in both) == [0, 1]
    assert (await sweep_once(stores.pg, reminder_days=days, clock=clock)).reminders == 0
    [event] = await reminder_event_ids(stores)
    # a new id: its message, notification record and Message-ID are not the lost one's
    assert event >= next_id > lost


async def reminder_event_ids(stores: Stores) -> list[int]:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM outbox WHERE event_type = 'membership.reminder_due' ORDER BY id"
        )
        return [int(r["id"]) for r in await cur.fetchall()]
