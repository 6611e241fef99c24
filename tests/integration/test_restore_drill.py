"""Restore drill: dump the test's schema, make writes (product edits, a new product, an
order), restore the dump, run the documented procedure (docs/operations.md, "Restore"):
the cache, the search index and the analytical copy follow Postgres back in time, and
nothing serves the lost future. Prints how long the procedure took."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
from fastapi import FastAPI

from app.commands.cache import flush_cache
from app.etl_schedule import etl_job
from app.settings import Settings
from app.stores import Stores
from search.reindex import reindex
from tests.integration.test_cache import new_product, version_of
from tests.support.auth import bearer
from tests.support.search import consumer_for, drain, index_versions, pg_versions


def run(*command: str) -> None:
    subprocess.run(command, check=True)


def analytical_products(settings: Settings) -> dict[int, int]:
    with etl_job(settings).store.connect_readonly() as duck:
        rows = duck.execute("SELECT id, version FROM products").fetchall()
    return {int(i): int(v) for i, v in rows}


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

    dump = tmp_path / "shop.dump"
    url, schema = settings.database_url, settings.database_schema
    await asyncio.to_thread(run, "pg_dump", "-Fc", "-n", schema, "-f", str(dump), url)

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
    await drain(stores, consumer_for(stores))
    await asyncio.to_thread(etl_job(settings).run, "incremental", None)
    assert await version_of(client, edited) >= 3  # cached, from the future
    assert (await index_versions(stores))[future] >= 1
    assert future in analytical_products(settings) and analytical_orders(settings) == 1

    # restore the dump (as an operator would: the schema is replaced)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await asyncio.to_thread(run, "pg_restore", "--no-owner", "-d", url, str(dump))
    for pool in (stores.pg, app.state.stores.pg):
        await pool.check()  # pooled sessions are idle: they hold no lock on the schema

    started = time.monotonic()
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
