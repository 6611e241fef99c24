"""Mixed workload through the load balancer, with 1 and with 2 API replicas.

    uv run python -m bench.mixed [--seconds 12] [--rounds 2] [--concurrency 8] [--products 200]

Starts a PRIVATE dev stack instance (``.devstack/instances/bench``, ports + 2000, so the
shared stack is not disturbed), deploys the API behind nginx plus the worker against a
fresh schema, then drives browse 70% (one product 55%, a list page 15%), search 20%,
orders 8% and uploads 2% from ``--concurrency`` asyncio clients (httpx) for
``--seconds`` per configuration, alternating 1 and 2 replicas for ``--rounds`` rounds.
Prints throughput and p50/p99 per operation, the error count (must be zero) and the
2-replica / 1-replica throughput ratio; stops the instance at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import time

import devstack
from bench.mixed_workload import (
    BENCH_MIX,
    Deployment,
    Sample,
    Workload,
    deploy,
    scale,
    summarize,
)

INSTANCE = "bench"
PORT_OFFSET = 2000


async def _measure(
    deployment: Deployment, seconds: float, concurrency: int, warmup: float, seed: int
) -> tuple[list[Sample], float]:
    async with Workload(deployment, BENCH_MIX, seed=seed) as load:
        await load.run(warmup, concurrency)  # fill caches, open connections
    async with Workload(deployment, BENCH_MIX, seed=seed + 1) as load:
        started = time.monotonic()
        await load.run(seconds, concurrency)
        return load.samples, time.monotonic() - started


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _table(results: dict[int, tuple[dict[str, dict[str, float]], float]]) -> str:
    lines = [
        "| replicas | operation | requests | req/s | p50 ms | p99 ms | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for replicas, (table, total) in results.items():
        for op, row in table.items():
            lines.append(
                f"| {replicas} | {op} | {row['requests']:.0f} | {row['per_s']:.1f} |"
                f" {_fmt(row['p50_ms'])} | {_fmt(row['p99_ms'])} | {row['errors']:.0f} |"
            )
        errors = sum(r["errors"] for r in table.values())
        lines.append(f"| {replicas} | **all** | | **{total:.1f}** | | | **{errors:.0f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="per configuration+round")
    parser.add_argument("--rounds", type=int, default=2, help="1, 2, 1, 2, ... replicas")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="leave the instance running")
    args = parser.parse_args(argv)

    layout = devstack.instance(INSTANCE, PORT_OFFSET, opensearch_heap="1g")
    samples: dict[int, list[Sample]] = {1: [], 2: []}
    elapsed: dict[int, float] = {1: 0.0, 2: 0.0}
    try:
        print(f"starting the private instance under {layout.root} ...", file=sys.stderr)
        deployment = deploy(layout, replicas=1, products=args.products)
        # the configurations alternate, so machine noise hits both
        for round_no in range(args.rounds):
            for replicas in (1, 2):
                scale(deployment, replicas)
                print(f"round {round_no + 1}: {replicas} replica(s) ...", file=sys.stderr)
                got, seconds = asyncio.run(
                    _measure(deployment, args.seconds, args.concurrency, args.warmup, 10 * round_no)
                )
                samples[replicas] += got
                elapsed[replicas] += seconds
    finally:
        if not args.keep:
            devstack.down(progress=False, layout=layout)
            shutil.rmtree(layout.root / "data", ignore_errors=True)
    results = {n: (summarize(samples[n], elapsed[n]), len(samples[n]) / elapsed[n]) for n in (1, 2)}

    print(
        f"\nmixed workload through nginx: {args.concurrency} concurrent clients,"
        f" {args.rounds} x {args.seconds:.0f} s per configuration, {args.products} products\n"
    )
    print(_table(results))
    one, two = results[1][1], results[2][1]
    print(f"\nthroughput 2 replicas / 1 replica: {two / one:.2f}x")
    errors = sum(r["errors"] for table, _ in results.values() for r in table.values())
    print(f"errors: {errors:.0f}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
