"""The soak (issue 14, item 7): mixed load through nginx on the app as `make run` runs it,
with the worker's relay, ETL schedule, image GC and sweeps busy, while every program's
memory, the open connections and the outbox backlog are sampled (tests/support/soak.py).

After the warm-up: memory of each program grows 10 % at most, connection counts stay
flat, no request fails, and the backlog drains once the load stops. A table per minute
is printed as the run goes and again at the end of the session.

- `pytest -m soak tests/integration/soak`: the full form, `POLYSHOP_SOAK_SECONDS`
  (default 1800) of load; deselected from the default run (pyproject's addopts).
- `test_soak_bounded` is in the default run (CI): `POLYSHOP_SOAK_BOUNDED_SECONDS`
  (default 300) of the same load, the same checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable

import pytest

from app.stores import Stores
from bench.mixed_workload import FAULT_MIX, Deployment, Sample, Workload, percentile
from tests.integration.fault.checks import backlog, dead_letters, private_stores
from tests.support import soak, summary
from tests.support.soak import MIB, Point

FULL_S = float(os.environ.get("POLYSHOP_SOAK_SECONDS", "1800"))
BOUNDED_S = float(os.environ.get("POLYSHOP_SOAK_BOUNDED_SECONDS", "300"))
CONCURRENCY = int(os.environ.get("POLYSHOP_SOAK_CONCURRENCY", "4"))
MAX_MEMORY_GROWTH = 0.10
CONNECTION_SLACK = 2  # medians; an ETL run or a sweep may hold one more for a moment
DRAIN_WITHIN_S = 120.0
# The warm-up: caches fill, pools open their connections, the JVMs and Erlang touch their
# heaps, and every periodic job has run: the worker's memory reaches its working level
# only after the ETL schedule (every minute here) has run both a full and an incremental
# copy (measured with the DuckDB writer engine kept: 114 MiB before, 135-148 MiB from then
# on; closed after each run since, 101-104 MiB throughout), and MinIO's Go heap after
# 12 minutes of this load on a quiet machine (21 on a loaded one; 207 -> 326 MiB, then
# 326-341 to the end: docs/benchmarks.md, "Soak"). So half of the run, and at least two
# ETL periods; a leak, a steady climb, shows in the second half as in any other.
WARMUP_FRACTION = 0.5
ETL_PERIOD_S = 60.0  # POLYSHOP_ETL_CRON in the deployment (conftest.py)


def warmup_s(seconds: float) -> float:
    return max(2 * ETL_PERIOD_S, WARMUP_FRACTION * seconds)


# Growth found by the soak and not fixed yet (docs/benchmarks.md, "Soak"), left out of the
# bounded form's memory check and printed. The worker's (its kept DuckDB engine) is
# fixed: the engine is closed after each run (POLYSHOP_ETL_ENGINE_MAX_RUNS, 1).
KNOWN_GROWTH_BOUNDED: tuple[str, ...] = ()


def window_s(seconds: float) -> float:
    return max(60.0, 0.1 * seconds)


@pytest.mark.soak
@pytest.mark.timeout(FULL_S + 900)
async def test_soak(
    soak_deployment: Deployment, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    await run_soak(soak_deployment, FULL_S, capsys, request.node, known_growth=())


@pytest.mark.timeout(BOUNDED_S + 600)
async def test_soak_bounded(
    soak_deployment: Deployment, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    await run_soak(
        soak_deployment, BOUNDED_S, capsys, request.node, known_growth=KNOWN_GROWTH_BOUNDED
    )


async def run_soak(
    deployment: Deployment,
    seconds: float,
    capsys: pytest.CaptureFixture[str],
    node: pytest.Item,
    *,
    known_growth: tuple[str, ...],
) -> None:
    pids = soak.programs(deployment.layout)
    for needed in ("worker", "notifications", "nginx", "postgres", "redis"):
        assert needed in pids, f"{needed} is not running: {sorted(pids)}"
    assert sum(1 for name in pids if name.startswith("api_")) == 2, sorted(pids)

    def show(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    def result(line: str) -> None:
        """A verdict line: shown now, and again in the terminal summary (the only place
        it appears when the soak runs in an xdist worker)."""
        show(line)
        summary.add(node, "soak: per minute", "", line)

    points: list[Point] = []
    async with (
        private_stores(deployment) as stores,
        Workload(deployment, FAULT_MIX, seed=14, timeout_s=30.0) as load,
    ):
        started = time.monotonic()
        stop = asyncio.Event()

        async def sample_until_stopped() -> None:
            table = MinuteTable(sorted(pids), load.samples, started)
            show(
                f"\nsoak: {seconds:.0f} s, {CONCURRENCY} clients, warm-up {warmup_s(seconds):.0f} s"
            )
            show(table.header())
            while not stop.is_set():
                points.append(await sample(stores, pids, started))
                table.add(points[-1], show)
                with contextlib.suppress(TimeoutError):  # the next sample is due
                    await asyncio.wait_for(stop.wait(), soak.SAMPLE_S)
            table.flush(show)
            summary.add(node, "soak: per minute", "", table.text())

        sampler = asyncio.create_task(sample_until_stopped())
        await load.run(seconds, CONCURRENCY)
        elapsed = time.monotonic() - started
        drained_s = await wait_drained(stores)
        points.append(await sample(stores, pids, started))
        stop.set()
        await sampler
        dead = await dead_letters(stores)

    samples = load.samples
    failed = [s for s in samples if not 200 <= s.status < 300]
    result(
        f"soak: {len(samples)} requests in {elapsed:.0f} s ({len(samples) / elapsed:.1f}/s),"
        f" {len(failed)} failed; backlog drained {drained_s:.1f} s after the load stopped"
    )
    verdict = soak.judge(
        soak.windows(points, warmup_s(seconds), window_s(seconds)),
        max_memory_growth=MAX_MEMORY_GROWTH,
        connection_slack=CONNECTION_SLACK,
        exclude=known_growth,
    )
    growth = ", ".join(f"{k} {v:+.1%}" for k, v in sorted(verdict.memory_growth.items()))
    result(f"soak: memory growth after the warm-up: {growth}")
    if known_growth:
        result(f"soak: not checked (known growth, docs/benchmarks.md): {', '.join(known_growth)}")
    result(f"soak: connections (first window, last window medians): {verdict.connections}")
    result(f"soak: shared memory segments, MiB (not judged: a fixed size): {segments(points)}")

    assert not failed, _failures(failed)
    assert len(samples) > 10 * seconds * 0.1, "the load barely ran"  # at least 1 req/s
    assert {s.op for s in samples} == set(FAULT_MIX), "every kind of request ran"
    assert math.isfinite(drained_s), "the outbox backlog did not drain after the load"
    assert dead == 0, f"{dead} outbox events dead-lettered"
    assert not verdict.problems, verdict.problems


async def sample(stores: Stores, pids: dict[str, int], started: float) -> Point:
    memory = await asyncio.to_thread(soak.memory_of, pids)
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            " AND coalesce(application_name, '') <> 'polyshop-fault'"
        )
        row = await cur.fetchone()
    assert row is not None
    clients = await stores.redis.client_list()
    return Point(
        at=time.monotonic() - started,
        memory={name: m.pss for name, m in memory.items()},
        shared={name: m.shared for name, m in memory.items() if m.shared},
        postgres_connections=int(row["n"]),
        redis_clients=len(clients) - 1,  # not this test's own connection
        backlog=await backlog(stores),
    )


def segments(points: list[Point]) -> str:
    """Each program's shared segments at the start and the end of the run."""
    first, last = points[0].shared, points[-1].shared
    return ", ".join(
        f"{name} {first.get(name, 0) / MIB:.1f} -> {last[name] / MIB:.1f}" for name in sorted(last)
    )


async def wait_drained(stores: Stores) -> float:
    """Seconds until the outbox backlog is 0 (inf if not within DRAIN_WITHIN_S)."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_WITHIN_S:
        if await backlog(stores) == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return math.inf


def _failures(failed: list[Sample]) -> str:
    by_kind: dict[str, int] = {}
    for s in failed:
        kind = f"{s.op} {s.status}{' ' + s.error if s.error else ''}"
        by_kind[kind] = by_kind.get(kind, 0) + 1
    return f"{len(failed)} requests failed: {by_kind}"


class MinuteTable:
    """One row per minute of load: requests, failures, p99, the highest connection
    counts and backlog of the minute, each program's memory at its end (MiB, shared
    segments out) and, last, the shared segments (`shm`: Postgres' shared buffers)."""

    def __init__(self, programs: list[str], samples: list[Sample], started: float) -> None:
        self.programs = programs
        self.samples = samples
        self.started = started
        self.lines: list[str] = [self.header()]
        self._minute: list[Point] = []
        self._minute_no = 0

    def header(self) -> str:
        names = " ".join(f"{p[:9]:>9}" for p in self.programs)
        head = f"{'min':>3} {'req':>6} {'fail':>4} {'p99ms':>6} {'pg':>3} {'rds':>3} {'bklg':>4}"
        return f"{head} {names} {'shm':>6}"

    def add(self, point: Point, show: Callable[[str], None]) -> None:
        minute = int(point.at // 60)
        if minute > self._minute_no and self._minute:
            self._emit(show)
            self._minute_no = minute
        self._minute.append(point)

    def flush(self, show: Callable[[str], None]) -> None:
        if self._minute:
            self._emit(show)

    def _emit(self, show: Callable[[str], None]) -> None:
        lo, hi = self._minute_no * 60, (self._minute_no + 1) * 60
        mine = [s for s in self.samples if lo <= s.started - self.started < hi]
        ok = [s.seconds * 1000 for s in mine if 200 <= s.status < 300]
        failed = sum(1 for s in mine if not 200 <= s.status < 300)
        p99 = percentile(ok, 0.99)
        last = self._minute[-1]
        memory = " ".join(f"{last.memory.get(p, 0) / MIB:>9.1f}" for p in self.programs)
        shared = sum(last.shared.values()) / MIB  # Postgres' shared buffers, touched so far
        line = (
            f"{self._minute_no + 1:>3} {len(mine):>6} {failed:>4}"
            f" {'-' if math.isnan(p99) else f'{p99:.0f}':>6}"
            f" {max(p.postgres_connections for p in self._minute):>3}"
            f" {max(p.redis_clients for p in self._minute):>3}"
            f" {max(p.backlog for p in self._minute):>4} {memory} {shared:>6.1f}"
        )
        self.lines.append(line)
        show(line)
        self._minute = []

    def text(self) -> str:
        return "\n".join(self.lines)
