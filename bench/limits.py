"""Benchmark of the request middleware: what rate limiting (one Redis EVALSHA per
request) and the rest of app/middleware/ cost per request.

    uv run python -m bench.limits [--requests 3000] [--concurrency 8]

The app runs in process over ASGI (httpx), against the real Redis of the environment
(`POLYSHOP_*`, e.g. `.devstack/services.env`), with its own Redis key prefix (removed
afterwards). The route is an unknown path (404): it touches no store, so the figures
are the middleware's cost, not a route's. Two modes, alternating in rounds so machine
noise hits both: rate limiting off (baseline) and on (buckets large enough that
nothing is refused). Request ids and the body limit are on in both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import httpx
from asgi_lifespan import LifespanManager

from app.logging import configure_logging
from app.main import create_app
from app.settings import Settings
from bench.isolation import bench_settings, bench_stores


async def _run(settings: Settings, requests: int, concurrency: int) -> tuple[float, list[float]]:
    app = create_app(settings)
    # log lines go to /dev/null: the cost of rendering and writing them, not of a terminal
    configure_logging(settings, stream=_DEVNULL)
    latencies: list[float] = []
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(requests):
                queue.put_nowait(i)

            async def worker() -> None:
                while not queue.empty():
                    queue.get_nowait()
                    started = time.perf_counter()
                    response = await client.get("/no/such/path")
                    latencies.append(time.perf_counter() - started)
                    if response.status_code != 404:
                        raise RuntimeError(f"unexpected {response.status_code}")

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
    return requests / elapsed, latencies


_DEVNULL = open(os.devnull, "w")  # noqa: SIM115  (open for the whole run)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(requests: int, concurrency: int, rounds: int) -> None:
    isolated = bench_settings(Settings(), "limits")
    base = isolated.model_copy(
        update={
            "access_log": False,  # log lines would dominate; measured separately below
            "rate_limit_key_capacity": 10**9,
            "rate_limit_address_capacity": 10**9,
        }
    )
    modes = {
        "rate limit off (baseline)": base.model_copy(update={"rate_limit_enabled": False}),
        "rate limit on": base,
        "rate limit on + access log (console)": base.model_copy(update={"access_log": True}),
        # production renders JSON lines (model_copy skips the dev-secret check)
        "rate limit on + access log (JSON)": base.model_copy(
            update={"access_log": True, "environment": "production"}
        ),
    }
    results: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in modes}
    async with bench_stores(isolated):  # its own schema and prefix, dropped afterwards
        for _ in range(rounds):
            for name, settings in modes.items():
                rate, latencies = await _run(settings, requests // rounds, concurrency)
                results[name][0].append(rate)
                results[name][1].extend(latencies)

    baseline = statistics.median(results["rate limit off (baseline)"][0])
    print(f"{requests} requests per mode, concurrency {concurrency}, {rounds} rounds")
    print("| mode | req/s (median of rounds) | p50 | p99 | vs baseline |")
    print("|---|---|---|---|---|")
    for name, (rates, latencies) in results.items():
        rate = statistics.median(rates)
        print(
            f"| {name} | {rate:.0f} | {_pct(latencies, 0.5):.2f} ms "
            f"| {_pct(latencies, 0.99):.2f} ms | {rate / baseline:.2f}x |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.rounds))
