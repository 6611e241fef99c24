"""The search answer cache through nginx: a repeated search and a repeated suggestion,
with the cache off (`POLYSHOP_SEARCH_CACHE_TTL_S=0`) and on, driven by hey.

    flock /work/wt/bench.lock uv run python -m bench.search_cache \\
        [--seconds 5] [--concurrency 64] [--replicas 2] [--products 200]

Deploys the app as `make run` does (bench/deployed.py: API replicas behind nginx, the
worker, its own schema, Redis prefix and index prefix; the rate limiter off) and, per
mode, URL and concurrency, reports throughput, p50, p99, errors and the CPU per request
of the API replicas, Redis and the search engine's JVM (the deployment's engine, from
devstack.status), as core-ms; then each cached figure as a ratio to the uncached one of
the same run. The hit ratio comes from the replicas' `polyshop_search_cache_requests`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

import devstack
from bench.deployed import deployed, reconfigure, replica_metrics
from bench.hey import HeyResult, ServerCpu, run_hey
from bench.mixed_workload import Deployment

URLS = {
    "search": "/search/products?q=chair",
    "suggest": "/search/suggest?q=ch",
}
MODES = {"uncached": "0", "cached": "60"}


@dataclass(frozen=True)
class Row:
    mode: str
    name: str
    concurrency: int
    result: HeyResult
    cpu_ms: dict[str, float]  # core-ms per request: api, redis, engine, server (their sum)
    hits: float  # fraction of lookups that hit (cache on)


def _engine_pid(deployment: Deployment) -> tuple[str, int]:
    engine = deployment.env.get("POLYSHOP_SEARCH_ENGINE", "opensearch")
    for service in devstack.status(layout=deployment.layout):
        if service.name == engine and service.pid and service.state == "RUNNING":
            return engine, service.pid
    raise SystemExit(f"no running {engine} in this dev stack")


def _wait_indexed(deployment: Deployment, products: int, timeout_s: float = 60) -> None:
    """Until the worker has indexed the catalog (every product searchable)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(f"{deployment.base_url}/search/products?limit=1", timeout=10)
        if answer.status_code == 200 and answer.json()["total"] >= products:
            return
        time.sleep(0.5)
    raise SystemExit("the catalog was not indexed in time")


def _lookups(deployment: Deployment) -> dict[str, float]:
    return replica_metrics(deployment, "polyshop_search_cache_requests")


def measure(deployment: Deployment, mode: str, name: str, concurrency: int, seconds: float) -> Row:
    url = deployment.base_url + URLS[name]
    run_hey(url, concurrency=concurrency, seconds=1.0)  # warm: connections, the entry
    cpu = ServerCpu(deployment.layout)  # the replicas restarted with the mode: new pids
    engine, pid = _engine_pid(deployment)
    cpu.meter.watch(engine, pid)
    looked = _lookups(deployment)
    before = cpu.measure()
    result = run_hey(url, concurrency=concurrency, seconds=seconds)
    after = cpu.measure()
    looked_after = _lookups(deployment)
    per = ServerCpu.per_request_ms(before, after, result.requests)
    n = max(1, result.requests)
    per["engine"] = (after[engine] - before[engine]) * 1000 / n
    per["server"] += per["engine"]
    delta = {k: looked_after.get(k, 0.0) - looked.get(k, 0.0) for k in looked_after}
    hits = sum(v for k, v in delta.items() if 'result="hit"' in k)
    total = sum(delta.values())
    return Row(mode, name, concurrency, result, per, hits / total if total else 0.0)


def report(rows: Sequence[Row]) -> str:
    lines = [
        "| mode | request | clients | req/s | p50 ms | p99 ms | errors | hits |"
        " API core-ms | Redis | engine JVM | server total |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.cpu_ms
        lines.append(
            f"| {r.mode} | {r.name} | {r.concurrency} | {r.result.rate:.0f} |"
            f" {r.result.p50_ms:.1f} | {r.result.p99_ms:.1f} | {r.result.failed()} |"
            f" {r.hits:.0%} | {c['api']:.2f} | {c['redis']:.2f} | {c['engine']:.2f} |"
            f" {c['server']:.2f} |"
        )
    lines.append("")
    lines.append("cached / uncached (same run):")
    base = {(r.name, r.concurrency): r for r in rows if r.mode == "uncached"}
    for r in rows:
        if r.mode != "cached" or (r.name, r.concurrency) not in base:
            continue
        u = base[r.name, r.concurrency]
        lines.append(
            f"  {r.name} at {r.concurrency}: throughput {r.result.rate / u.result.rate:.2f}x,"
            f" p50 {r.result.p50_ms / u.result.p50_ms:.2f}x,"
            f" server core-ms/request {r.cpu_ms['server'] / u.cpu_ms['server']:.2f}x"
            f" (engine {r.cpu_ms['engine']:.2f} vs {u.cpu_ms['engine']:.2f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="64")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--products", type=int, default=200)
    args = parser.parse_args(argv)
    # a `timeout` (or ^C) still stops the deployment and drops its data
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    levels = [int(c) for c in args.concurrency.split(",")]
    rows: list[Row] = []
    settings = {"POLYSHOP_RATE_LIMIT_ENABLED": "false"}
    with deployed(
        "searchcache", replicas=args.replicas, products=args.products, settings=settings
    ) as deployment:
        _wait_indexed(deployment, args.products)
        for mode, ttl in MODES.items():
            current = reconfigure(deployment, {"POLYSHOP_SEARCH_CACHE_TTL_S": ttl})
            for name in URLS:
                for concurrency in levels:
                    rows.append(measure(current, mode, name, concurrency, args.seconds))
                    print(report(rows[-1:]).splitlines()[2], flush=True)
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
