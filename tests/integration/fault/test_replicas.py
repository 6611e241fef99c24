"""Two API replicas behind nginx (the private instance of the fault suite): both serve,
and nothing depends on which one answers: a write through one is read through the other,
an Idempotency-Key is honoured across them, the analytical copy is the same on both."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

import devstack
from bench.mixed_workload import Deployment, scale
from tests.integration.fault.checks import private_stores
from tests.integration.fault.ledger import Ledger

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]


def _replica_urls(lb: Deployment) -> list[str]:
    ports = [name.rsplit("_", 1)[1] for name in devstack.api_replicas(layout=lb.layout)]
    return [f"http://127.0.0.1:{port}" for port in ports]


@pytest.fixture
async def replicas(lb: Deployment) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in _replica_urls(lb)]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


def _admin(lb: Deployment) -> dict[str, str]:
    return {"Authorization": f"Bearer {lb.admin_key}"}


async def test_nginx_spreads_requests_over_both_replicas(lb: Deployment) -> None:
    assert len(_replica_urls(lb)) == 2
    assert await _upstreams(lb) == {url.removeprefix("http://") for url in _replica_urls(lb)}


async def test_a_write_through_one_replica_is_read_through_the_other(
    lb: Deployment, replicas: list[httpx.AsyncClient]
) -> None:
    assert len(replicas) == 2
    product_id = lb.product_ids[0]
    for i in range(6):
        writer, reader = replicas[i % 2], replicas[(i + 1) % 2]
        await reader.get(f"/products/{product_id}")  # the reader's cache is warm
        written = await writer.patch(
            f"/products/{product_id}", json={"name": f"Renamed {i}"}, headers=_admin(lb)
        )
        assert written.status_code == 200, written.text
        read = await reader.get(f"/products/{product_id}")
        assert read.status_code == 200
        assert read.json()["version"] == written.json()["version"]
        assert read.json()["name"] == f"Renamed {i}"


async def test_an_idempotency_key_holds_across_replicas(
    lb: Deployment, replicas: list[httpx.AsyncClient]
) -> None:
    headers = {"Authorization": f"Bearer {lb.customer_key}", "Idempotency-Key": uuid.uuid4().hex}
    body = {"items": [{"product_id": lb.product_ids[1], "quantity": 2}]}
    first = await replicas[0].post("/orders", json=body, headers=headers)
    again = await replicas[1].post("/orders", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    async with private_stores(lb) as stores, stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM order_lines WHERE order_id = %s", (first.json()["id"],)
        )
        row = await cur.fetchone()
    assert row is not None and row["n"] == 1


async def _finished_run(client: httpx.AsyncClient, lb: Deployment, run_id: int) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = await client.get(f"/etl/runs/{run_id}", headers=_admin(lb))
        if response.status_code == 200 and response.json()["status"] not in ("queued", "running"):
            return str(response.json()["status"])
        await asyncio.sleep(0.5)
    raise TimeoutError(f"ETL run {run_id} still running")


async def test_the_analytical_copy_is_the_same_through_every_replica(
    lb: Deployment, ledger: Ledger, replicas: list[httpx.AsyncClient]
) -> None:
    """An ETL run started through one replica; both answer from the same copy, and it
    equals Postgres, including every order acknowledged during the fault tests."""
    started = await replicas[0].post("/etl/runs", json={}, headers=_admin(lb))
    assert started.status_code == 202, started.text
    assert await _finished_run(replicas[1], lb, started.json()["id"]) == "succeeded"
    async with private_stores(lb) as stores, stores.pg.connection() as conn:
        cur = await conn.execute("SELECT id, version FROM products ORDER BY id")
        products = [[r["id"], r["version"]] for r in await cur.fetchall()]
        cur = await conn.execute("SELECT id, total_minor FROM orders ORDER BY id")
        orders = [[r["id"], r["total_minor"]] for r in await cur.fetchall()]
    assert set(ledger.orders.values()) <= {order_id for order_id, _ in orders}
    for client in replicas:
        for sql, expected in (
            ("SELECT id, version FROM products ORDER BY id", products),
            ("SELECT id, total_minor FROM orders ORDER BY id", orders),
        ):
            answer = await client.post(
                "/analytics/query", json={"sql": sql, "params": []}, headers=_admin(lb)
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["rows"] == expected


async def _upstreams(lb: Deployment, requests: int = 30) -> set[str]:
    async with httpx.AsyncClient(base_url=lb.base_url, timeout=10) as client:
        return {
            (await client.get("/healthz")).headers["x-polyshop-upstream"] for _ in range(requests)
        }


async def test_scaling_changes_the_replicas_nginx_sends_to(lb: Deployment) -> None:
    """run_app with another replica count re-renders nginx.conf and reloads nginx."""
    try:
        await asyncio.to_thread(scale, lb, 3)
        assert len(_replica_urls(lb)) == 3
        assert await _upstreams(lb) == {u.removeprefix("http://") for u in _replica_urls(lb)}
    finally:
        await asyncio.to_thread(scale, lb, 2)
    assert await _upstreams(lb) == {u.removeprefix("http://") for u in _replica_urls(lb)}
