"""Product read throughput against running servers: cached vs uncached
`GET /products/{id}`, and a bare endpoint returning the same bytes from the same app.

Starts two uvicorn servers (subprocesses) on a schema of its own (migrated, seeded with
`--products` products, dropped afterwards) and a Redis prefix of its own:
- port 18080: the normal app (Redis cache on), with the hidden bench routes enabled;
- port 18081: the same app with `cache_enabled=false` (every read goes to Postgres).
An async httpx client loop then measures each scenario for `--seconds`, in `--rounds`
alternating rounds so machine noise hits every scenario.

    uv run python -m bench.catalog [--products 2000] [--seconds 3] [--rounds 3]

Sizes are modest on purpose: the dev machine is small and shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import redis

from app.settings import get_settings
from bench.isolation import bench_env, bench_settings
from storage import migrate

# names of this run's own (bench/isolation.py): never the shop's schema, prefix or index
_OWN = bench_env(bench_settings(get_settings(), "catalog"))
SCHEMA = _OWN["POLYSHOP_DATABASE_SCHEMA"]
PREFIX = _OWN["POLYSHOP_REDIS_PREFIX"]
CACHED_PORT = 18080
UNCACHED_PORT = 18081
CACHED = "cached (Redis)"
UNCACHED = "uncached (Postgres)"
BARE = "bare (same bytes, memory)"


@dataclass
class Result:
    name: str
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rate:8.1f} req/s   p50 {self.pct(0.5):6.2f} ms"
            f"   p99 {self.pct(0.99):6.2f} ms   ({self.requests} requests)"
        )


def _prepare_schema(url: str, products: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    migrate.upgrade(url, SCHEMA)
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={SCHEMA}") as conn:
        conn.execute(
            """
            INSERT INTO products (sku, name, description, brand, category, price_minor,
                                  currency, stock, attributes)
            SELECT 'BENCH-' || g, 'Bench product ' || g,
                   repeat('A sturdy and handsome product. ', 8),
                   'Brand ' || (g %% 40), 'Home/Kitchen/Bench ' || (g %% 25),
                   100 + g * 7, 'EUR', g %% 100,
                   jsonb_build_object('color', 'blue', 'size', 'M', 'material', 'oak')
              FROM generate_series(1, %s) g
            """,
            (products,),
        )


def _drop_schema(url: str, redis_url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextlib.contextmanager
def _server(port: int, **settings: str) -> Iterator[str]:
    env = {
        **os.environ,
        **_OWN,
        "POLYSHOP_ACCESS_LOG": "false",
        "POLYSHOP_RATE_LIMIT_ENABLED": "false",  # measure the read path, not the limiter
        **{f"POLYSHOP_{k.upper()}": v for k, v in settings.items()},
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--no-proxy-headers",  # as `polyshop serve`: the app reads them itself
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _load(
    name: str, base: str, path: str, ids: list[int], seconds: float, concurrency: int
) -> Result:
    """`concurrency` keep-alive connections, each sending one request after another.

    A minimal HTTP/1.1 client on asyncio streams rather than httpx: the load generator
    shares the small machine with the server, and httpx's per-request cost would make
    the client, not the server, the bottleneck (every scenario would measure the same).
    """
    result = Result(name)
    host, port = base.removeprefix("http://").split(":")
    rng = random.Random(1)
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                target = path.format(id=rng.choice(ids))
                started = time.perf_counter()
                writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(_content_length(head))
                result.latencies.append(time.perf_counter() - started)
                if head[9:12] != b"200":
                    raise RuntimeError(f"{name}: {head[:12]!r} for {target}")
                result.requests += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    raise RuntimeError(f"no content-length in {head[:200]!r}")


async def _warm(base: str, path: str, ids: list[int]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for chunk in range(0, len(ids), 50):
            await asyncio.gather(*(client.get(path.format(id=i)) for i in ids[chunk : chunk + 50]))


def _merge(results: list[Result]) -> Result:
    merged = Result(results[0].name)
    for r in results:
        merged.requests += r.requests
        merged.seconds += r.seconds
        merged.latencies += r.latencies
    return merged


async def _measure(
    cached: str, uncached: str, ids: list[int], seconds: float, rounds: int, concurrency: int
) -> dict[str, Result]:
    scenarios = {
        CACHED: (cached, "/products/{id}"),
        UNCACHED: (uncached, "/products/{id}"),
        BARE: (cached, "/_bench/bare/{id}"),
    }
    await _warm(cached, "/products/{id}", ids)
    await _warm(cached, "/_bench/bare/{id}", ids)
    await _warm(uncached, "/products/{id}", ids[:50])
    runs: dict[str, list[Result]] = {name: [] for name in scenarios}
    for _ in range(rounds):
        for name, (base, path) in scenarios.items():
            runs[name].append(await _load(name, base, path, ids, seconds, concurrency))
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{cached}/metrics")).text
    print(*(line for line in metrics.splitlines() if "cache_requests_total{" in line), sep="\n")
    for i in range(rounds):
        c, u, b = (runs[k][i].rate for k in (CACHED, UNCACHED, BARE))
        print(f"round {i + 1}: cached/uncached {c / u:.2f}x, cached/bare {c / b:.2f}x")
    return {name: _merge(results) for name, results in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    settings = get_settings()
    url = settings.database_url
    print(f"seeding {args.products} products in schema {SCHEMA} ...", flush=True)
    _prepare_schema(url, args.products)
    ids = list(range(1, args.products + 1))
    try:
        with (
            _server(CACHED_PORT, bench_routes="true") as cached,
            _server(UNCACHED_PORT, cache_enabled="false") as uncached,
        ):
            results = asyncio.run(
                _measure(cached, uncached, ids, args.seconds, args.rounds, args.concurrency)
            )
    finally:
        _drop_schema(url, settings.redis_url)

    for result in results.values():
        print(result.line())
    c, u, b = (results[k] for k in (CACHED, UNCACHED, BARE))
    print(f"cached / uncached throughput: {c.rate / u.rate:.2f}x (goal >= 2x)")
    print(f"cached / bare throughput:     {c.rate / b.rate:.2f}x (goal >= 0.7x)")
    print(f"p50: cached {c.pct(0.5):.2f} ms, uncached {u.pct(0.5):.2f}, bare {b.pct(0.5):.2f}")


if __name__ == "__main__":
    main()
