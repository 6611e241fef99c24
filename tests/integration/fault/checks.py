"""What the fault suite compares after recovery: Postgres against every derived store,
and the ledger of acknowledged writes against all of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from app.settings import Settings
from app.stores import Stores, open_stores
from bench.mixed_workload import Deployment
from tests.integration.fault.ledger import Ledger
from tests.support.images import object_keys
from tests.support.search import index_versions, pg_versions


def settings_for(deployment: Deployment) -> Settings:
    """The settings the deployed app processes run with (same schema, prefixes, bucket)."""
    return settings_from_env(deployment.env)


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Settings from POLYSHOP_* variables (exactly these: no environment is read)."""
    values = {k.removeprefix("POLYSHOP_").lower(): v for k, v in env.items()}
    return Settings.model_validate(values)


@contextlib.asynccontextmanager
async def private_stores(deployment: Deployment) -> AsyncIterator[Stores]:
    async with open_stores(settings_for(deployment), application_name="polyshop-fault") as s:
        yield s


async def _scalar(stores: Stores, sql: str, *params: Any) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
    assert row is not None
    return int(next(iter(row.values())))


async def backlog(stores: Stores) -> int:
    """Outbox events not yet applied by some consumer (cache, search)."""
    return await _scalar(stores, "SELECT count(*) FROM outbox_pending")


async def dead_letters(stores: Stores) -> int:
    return await _scalar(stores, "SELECT count(*) FROM outbox_dead_letters")


async def wait_converged(stores: Stores, within_s: float = 90.0) -> None:
    """Until the outbox is drained and the index holds exactly Postgres' ids + versions
    (raises TimeoutError with the last difference otherwise)."""
    deadline = time.monotonic() + within_s
    last = ""
    while time.monotonic() < deadline:
        try:
            pending = await backlog(stores)
            if pending == 0:
                pg, index = await pg_versions(stores), await index_versions(stores)
                if pg == index:
                    return
                diff = {k: (pg.get(k), index.get(k)) for k in pg.keys() | index.keys()}
                last = f"index differs: {[(k, v) for k, v in diff.items() if v[0] != v[1]][:10]}"
            else:
                last = f"{pending} outbox events pending"
        except Exception as exc:  # a store still coming back: try again
            last = repr(exc)
        await asyncio.sleep(0.5)
    raise TimeoutError(f"derived stores did not converge within {within_s:.0f}s: {last}")


async def cache_problems(deployment: Deployment, stores: Stores) -> list[str]:
    """Read every product through nginx (cache first): none may be older than Postgres."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT id, version FROM products WHERE deleted_at IS NULL")
        truth = {int(r["id"]): int(r["version"]) for r in await cur.fetchall()}
    problems = []
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=10) as client:
        for _round in range(2):  # both replicas answer in turn; either could be stale
            for product_id, version in truth.items():
                response = await client.get(f"/products/{product_id}")
                served = response.json().get("version") if response.status_code == 200 else None
                if served != version:
                    problems.append(
                        f"product {product_id}: served {response.status_code} version"
                        f" {served}, Postgres has {version}"
                    )
    return problems


async def ledger_problems(ledger: Ledger, stores: Stores) -> list[str]:
    """Every acknowledged write is in Postgres and its derived stores; no order twice."""
    problems = list(ledger.order_conflicts)
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT id FROM orders")
        pg_orders = {int(r["id"]) for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT key, response_status, response_body FROM idempotency_keys"
            " WHERE state = 'completed'"
        )
        keyed = await cur.fetchall()
        cur = await conn.execute("SELECT id, version FROM products")
        pg_products = {int(r["id"]): int(r["version"]) for r in await cur.fetchall()}
        cur = await conn.execute("SELECT id, object_key FROM product_images")
        pg_images = {int(r["id"]): str(r["object_key"]) for r in await cur.fetchall()}

    acked_orders = set(ledger.orders.values())
    if missing := acked_orders - pg_orders:
        problems.append(f"acknowledged orders missing from Postgres: {sorted(missing)}")
    extra = pg_orders - acked_orders
    if len(extra) > len(ledger.unresolved_orders):
        problems.append(f"orders nobody was told about: {sorted(extra)}")
    # one order per Idempotency-Key, and one key per order
    created = Counter(
        int(json.loads(bytes(r["response_body"]))["id"])
        for r in keyed
        if r["response_status"] == 201
    )
    if doubled := [order_id for order_id, n in created.items() if n > 1]:
        problems.append(f"orders answered for more than one key: {doubled}")
    if set(created) != pg_orders:
        problems.append(
            f"orders without their key: {sorted(pg_orders - set(created))}; "
            f"keys without their order: {sorted(set(created) - pg_orders)}"
        )

    for product_id, version in ledger.patches.items():
        if pg_products.get(product_id, 0) < version:
            problems.append(
                f"product {product_id}: acknowledged version {version}, Postgres has"
                f" {pg_products.get(product_id)}"
            )
    index = await index_versions(stores)
    for product_id in ledger.patches:
        if index.get(product_id) != pg_products.get(product_id):
            problems.append(
                f"product {product_id}: index version {index.get(product_id)}, Postgres"
                f" {pg_products.get(product_id)}"
            )

    if missing_images := set(ledger.images) - set(pg_images):
        problems.append(f"acknowledged images missing from Postgres: {sorted(missing_images)}")
    blobs = set(await object_keys(stores))
    if dangling := {i: k for i, k in pg_images.items() if k not in blobs}:
        problems.append(f"image rows pointing at missing blobs: {dangling}")
    return problems
