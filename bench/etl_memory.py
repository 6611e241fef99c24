"""The worker's memory across many ETL runs (issue 14, the soak's worker growth).

One process runs the ETL again and again against a schema of its own (bench/isolation.py)
on a small shop whose orders grow and whose products change between runs, as the soak's
load does, and samples after each run: its RSS and PSS (psutil), DuckDB's own
accounting of the writer engine (`duckdb_memory()`), Python's allocations (tracemalloc,
with `--tracemalloc`) and the number of threads. Each run goes through a thread pool, as
the worker's `asyncio.to_thread` does, so glibc hands it the arenas the worker would.

    uv run python -m bench.etl_memory --runs 120            # the worker as it is
    MALLOC_ARENA_MAX=2 uv run python -m bench.etl_memory --runs 120

Prints a line every `--every` runs and the growth from the end of the warm-up (a fifth
of the runs) to the end, as a ratio of the memory after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
import psycopg

from app.etl_schedule import etl_job
from app.settings import Settings, get_settings
from bench.isolation import bench_settings, bench_stores
from etl import engine
from etl.runner import Kind
from sampledata.shop import seed

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    run: int
    rss: int
    pss: int
    uss: int  # pages of this process alone (not shared with any other)
    duckdb: int  # bytes DuckDB's buffer manager accounts for (duckdb_memory())
    python: int  # bytes tracemalloc traces (0 without --tracemalloc)
    threads: int


def malloc_trim() -> None:
    """glibc's malloc_trim(0): every arena's free pages back to the system."""
    import ctypes
    import ctypes.util

    ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def duckdb_bytes() -> int:
    total = 0
    for con in list(engine._engines.values()):
        with contextlib.suppress(Exception):
            row = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
            total += int(row[0] or 0) if row else 0
    return total


def sample(run: int) -> Sample:
    proc = psutil.Process()
    info = proc.memory_full_info()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    return Sample(run, info.rss, info.pss, info.uss, duckdb_bytes(), traced, proc.num_threads())


def change_some_rows(settings: Settings, run: int, orders: int) -> None:
    """What the soak's load does between two ETL runs: new orders, product edits."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{settings.database_schema}"')
        seed(conn, products=0, customers=0, orders=orders, seed=run)
        conn.execute("UPDATE products SET stock = stock + 1 WHERE id %% 7 = %s", (run % 7,))


def line(s: Sample) -> str:
    return (
        f"run {s.run:>4}  rss {s.rss / MIB:7.1f}  pss {s.pss / MIB:7.1f}"
        f"  uss {s.uss / MIB:7.1f} MiB"
        f"  duckdb {s.duckdb / MIB:6.1f}  python {s.python / MIB:6.1f} MiB  threads {s.threads}"
    )


def measure(settings: Settings, args: argparse.Namespace) -> list[Sample]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{settings.database_schema}"')
        seed(conn, products=args.products, customers=args.customers, orders=args.orders)
    job = etl_job(settings)
    samples: list[Sample] = []
    first: tracemalloc.Snapshot | None = None
    warmup = max(2, args.runs // 5)
    with ThreadPoolExecutor(max_workers=6) as pool:  # asyncio's default pool size here
        for run in range(1, args.runs + 1):
            change_some_rows(settings, run, args.orders_per_run)
            kind: Kind = "full" if run == 1 else "incremental"
            result = pool.submit(job.run, kind, None).result()
            assert result.status == "succeeded", result.error
            if args.fresh_engine:  # the engine closed after each run (a new one next run)
                for threads, limit in list(engine._engines):
                    engine._discard(threads, limit)
            if args.trim:
                malloc_trim()
            samples.append(sample(run))
            if run % args.every == 0 or run == args.runs:
                print(line(samples[-1]), flush=True)
            if args.tracemalloc and run == warmup:
                first = tracemalloc.take_snapshot()
            if args.interval:
                time.sleep(args.interval)
    if first is not None:
        print("\ntracemalloc: largest growth since the warm-up (file:line)")
        for stat in tracemalloc.take_snapshot().compare_to(first, "lineno")[:12]:
            print(f"  {stat}")
    return samples


def report(samples: list[Sample], runs: int) -> None:
    warmup = max(2, runs // 5)
    base = samples[warmup - 1]
    last = samples[-1]
    ratio = last.pss / base.pss
    print(
        f"\n{runs} runs; after the warm-up (run {warmup}) -> run {last.run}:"
        f" PSS {base.pss / MIB:.1f} -> {last.pss / MIB:.1f} MiB ({ratio:.3f}x),"
        f" RSS {base.rss / MIB:.1f} -> {last.rss / MIB:.1f} MiB ({last.rss / base.rss:.3f}x),"
        f" USS {base.uss / MIB:.1f} -> {last.uss / MIB:.1f} MiB ({last.uss / base.uss:.3f}x),"
        f" DuckDB {base.duckdb / MIB:.1f} -> {last.duckdb / MIB:.1f} MiB,"
        f" python {base.python / MIB:.1f} -> {last.python / MIB:.1f} MiB;"
        f" MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}"
    )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


async def main_async(args: argparse.Namespace) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    settings = bench_settings(get_settings(), "etlmem", etl_schedule_enabled=False)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    async with bench_stores(settings):
        samples = await asyncio.to_thread(measure, settings, args)
    report(samples, args.runs)
    for path in settings.duckdb_path.parent.glob(f"{settings.duckdb_path.name}*"):
        if path.is_dir():
            import shutil

            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.0, help="pause between runs (s)")
    parser.add_argument("--products", type=int, default=400)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--orders-per-run", type=int, default=40)
    parser.add_argument("--trim", action="store_true", help="release free heap after each run")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--fresh-engine", action="store_true", help="close DuckDB after each run")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(8)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
