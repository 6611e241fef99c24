"""Order creation throughput: many SKUs (no contention) vs one hot SKU (every order
locks the same product row), through the real app in process (ASGI) on a schema of
its own, which is dropped afterwards.

    uv run python -m bench.orders [--orders 400] [--concurrency 8] [--skus 200]

Sizes are modest on purpose: the dev machine is small and shared.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings, get_settings
from app.stores import Stores
from bench.isolation import bench_settings, bench_stores
from storage import api_keys

ROUNDS = 4


@dataclass
class Result:
    name: str
    orders: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rate:8.1f} orders/s   p50 {self.pct(0.5):6.1f} ms"
            f"   p99 {self.pct(0.99):6.1f} ms   ({self.orders} orders)"
        )


async def _setup(stores: Stores, skus: int, workers: int) -> tuple[list[int], list[str]]:
    pepper = stores.settings.api_key_pepper.get_secret_value()
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO products (sku, name, price_minor, stock)"
            " SELECT 'B-' || g, 'Bench item ' || g, 1000 + g, 1000000"
            " FROM generate_series(1, %s) g RETURNING id",
            (skus,),
        )
        product_ids = [r["id"] for r in await cur.fetchall()]
        keys = []
        for i in range(workers):
            cur = await conn.execute(
                "INSERT INTO customers (email, name) VALUES (%s, 'Bench') RETURNING id",
                (f"bench-{i}@example.test",),
            )
            row = await cur.fetchone()
            assert row is not None
            keys.append(
                await api_keys.create_key(
                    conn, pepper=pepper, role="customer", customer_id=row["id"]
                )
            )
    return product_ids, keys


async def _scenario(
    name: str, client: httpx.AsyncClient, keys: list[str], products: list[int], n: int
) -> Result:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(products[i % len(products)])

    async def worker(key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        while not queue.empty():
            product = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(
                "/orders",
                json={"items": [{"product_id": product, "quantity": 1}]},
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code}: {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in keys))
    return Result(name, n, time.perf_counter() - started, latencies)


async def main(orders: int, concurrency: int, skus: int) -> None:
    settings = bench_settings(get_settings(), "orders", database_pool_max=concurrency + 2)
    async with bench_stores(settings):
        await _main(settings, orders, concurrency, skus)


async def _main(settings: Settings, orders: int, concurrency: int, skus: int) -> None:
    app = create_app(settings)
    async with LifespanManager(app):
        stores: Stores = app.state.stores
        products, keys = await _setup(stores, skus, concurrency)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await _scenario("warm-up", client, keys, products, concurrency * 4)
            # alternate the two in rounds, so noise from a shared machine hits both
            spread = Result(f"no contention ({skus} SKUs)", 0, 0.0, [])
            hot = Result("contention (1 hot SKU)", 0, 0.0, [])
            for _ in range(ROUNDS):
                for total, items in ((spread, products), (hot, products[:1])):
                    r = await _scenario(total.name, client, keys, items, orders // ROUNDS)
                    total.orders += r.orders
                    total.seconds += r.seconds
                    total.latencies += r.latencies
    print(f"order creation, {concurrency} concurrent clients, in-process ASGI")
    print(spread.line())
    print(hot.line())
    print(f"throughput ratio contention / no contention: {hot.rate / spread.rate:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skus", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.concurrency, args.skus))
