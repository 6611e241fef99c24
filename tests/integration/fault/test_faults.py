"""Fault injection: under a mixed load through nginx (2 API replicas + worker on a private
dev stack instance), stop or kill -9 each service in turn and bring it back. Each
search engine is killed under an app that uses it (OpenSearch is the deployment's
engine; for the Elasticsearch fault the deployment moves to that node and back,
`bench.mixed_workload.on_engine`).

During the fault the API degrades as guarantee 8 says (never a 500); after recovery
every derived store equals Postgres, every acknowledged write is found, and no order
retried with the same Idempotency-Key exists twice. Times to recover are printed in the
terminal summary (no timing asserts).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

import devstack
from bench.mixed_workload import FAULT_MIX, Deployment, Sample, Workload, on_engine
from tests.integration.fault.checks import (
    backlog,
    cache_problems,
    dead_letters,
    ledger_problems,
    private_stores,
    wait_converged,
)
from tests.integration.fault.ledger import Ledger, Recovery
from tests.support import summary

# the first fault's setup boots the private instance and deploys on it: minutes on a
# loaded machine, beside the other tests
pytestmark = [pytest.mark.fault, pytest.mark.timeout(900)]

CONCURRENCY = 4
WARM_S = 1.5  # load before the fault
HOLD_S = 7.0  # how long the service stays down (> the 5 s wait for a pool connection)
AFTER_S = 1.5  # load after recovery
READS = {"get", "list", "search"}
WRITES = {"order", "patch", "upload"}

Check = Callable[[list[Sample]], list[str]]


def _ok(s: Sample) -> bool:
    return 200 <= s.status < 300


def _not_ok(samples: list[Sample], ops: set[str]) -> list[str]:
    bad = Counter((s.op, s.status) for s in samples if s.op in ops and not _ok(s))
    return [f"{op} answered {status} x{n}" for (op, status), n in sorted(bad.items())]


def redis_down(window: list[Sample]) -> list[str]:
    # reads come from Postgres, writes commit (the outbox keeps the invalidations)
    return _not_ok(window, READS | WRITES)


def search_down(window: list[Sample]) -> list[str]:
    problems = _not_ok(window, READS - {"search"} | WRITES)
    if not any(s.op == "search" for s in window):
        problems.append("no search request during the fault")
    for s in window:
        # 200: an answer the search cache still holds (docs/search.md); else 503
        if s.op == "search" and not (_ok(s) or (s.status == 503 and s.retry_after)):
            problems.append(f"search answered {s.status} (retry-after: {s.retry_after})")
    return problems


def minio_down(window: list[Sample]) -> list[str]:
    problems = _not_ok(window, READS | WRITES - {"upload"})
    if not any(s.op == "upload" for s in window):
        problems.append("no upload during the fault")
    for s in window:
        if s.op == "upload" and not (s.status == 503 and s.retry_after):
            problems.append(f"upload answered {s.status} (retry-after: {s.retry_after})")
    return problems


def postgres_down(window: list[Sample]) -> list[str]:
    # whatever cannot be served says 503 + Retry-After; cached product reads and search
    # may still answer 200
    problems = [
        f"{s.op} answered {s.status} (retry-after: {s.retry_after})"
        for s in window
        if not (_ok(s) or (s.status == 503 and s.retry_after))
    ]
    if not any(s.status == 503 for s in window):
        problems.append("no request met the fault (no 503)")
    return problems


def replica_down(window: list[Sample]) -> list[str]:
    # nginx sends everything to the other replica; only a write that was already sent
    # to the killed replica may fail (502: nginx never re-sends a POST)
    problems = _not_ok(window, READS)
    failed_writes = [s for s in window if s.op in WRITES and not _ok(s)]
    problems += [f"{s.op} answered {s.status}" for s in failed_writes if s.status != 502]
    if len(failed_writes) > 2 * CONCURRENCY:
        problems.append(f"{len(failed_writes)} writes failed: more than were in flight")
    return problems


def worker_down(window: list[Sample]) -> list[str]:
    return _not_ok(window, READS | WRITES)


@dataclass(frozen=True)
class Fault:
    service: str  # a supervisord program, or "api" for one API replica
    action: str  # "stop" (graceful) or "kill" (kill -9)
    check: Check
    # the engine the app runs on during this fault (the deployment's default otherwise)
    engine: str = "opensearch"

    def __str__(self) -> str:
        return f"{self.action} {self.service}"


FAULTS = [
    Fault("redis", "kill", redis_down),
    # each engine killed under the app that uses it: the same 503 + Retry-After, the
    # same convergence (the deployment moves to Elasticsearch for that one fault only)
    Fault("opensearch", "kill", search_down),
    Fault("elasticsearch", "kill", search_down, engine="elasticsearch"),
    Fault("minio", "kill", minio_down),
    Fault("postgres", "kill", postgres_down),
    Fault("api", "kill", replica_down),
    Fault("worker", "kill", worker_down),
    # graceful stops (SIGTERM): the replica drains its requests, the worker its batch
    Fault("api", "stop", replica_down),
    Fault("worker", "stop", worker_down),
]


def _program(lb: Deployment, fault: Fault) -> str:
    if fault.service == "api":
        return devstack.api_replicas(layout=lb.layout)[0]  # e.g. api:api_9001
    return fault.service


def _inject(lb: Deployment, fault: Fault) -> None:
    name = _program(lb, fault)
    if fault.action == "kill":
        devstack.kill_service(name, layout=lb.layout)
    else:
        devstack.stop_service(name, layout=lb.layout)


def _restart(lb: Deployment, fault: Fault, name: str) -> None:
    devstack.start_service(name, layout=lb.layout)  # services: waits until ready
    if fault.service == "api":
        devstack.wait_app_ready(layout=lb.layout)


async def _wait_api_recovered(lb: Deployment, fault: Fault, within_s: float = 120) -> None:
    """Until /readyz through nginx is 200 (every store reachable again) and, for a
    replica, that replica answers by itself."""
    deadline = time.monotonic() + within_s
    urls = [f"{lb.base_url}/readyz"]
    if fault.service == "api":
        port = _program(lb, fault).rsplit("_", 1)[1]
        urls.append(f"http://127.0.0.1:{port}/healthz")
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if all([(await client.get(u)).status_code == 200 for u in urls]):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"API not recovered within {within_s:.0f}s after {fault}")


READYZ_LINE = {
    "postgres": "postgres",
    "redis": "redis",
    "opensearch": "search",
    "elasticsearch": "search",
    "minio": "blobs",
}


async def _readiness(lb: Deployment) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=15) as client:
        response = await client.get(f"{lb.base_url}/readyz")
    return response.status_code, response.text


def _describe(window: list[Sample]) -> str:
    total = Counter(s.op for s in window)
    failed = Counter((s.op, s.status) for s in window if not _ok(s))
    text = ", ".join(f"{op} {status} x{n}" for (op, status), n in sorted(failed.items()))
    return f"{sum(total.values())} requests; " + (text or "all 2xx")


@pytest.mark.parametrize("fault", FAULTS, ids=str)
async def test_fault(
    lb: Deployment, ledger: Ledger, fault: Fault, request: pytest.FixtureRequest
) -> None:
    deployment = await asyncio.to_thread(on_engine, lb, fault.engine)
    try:
        await _fault_under_load(
            deployment, ledger, fault, lambda r: summary.add(request.node, *r.summary_row())
        )
    finally:  # the next fault finds the deployment as the fixture made it
        await asyncio.to_thread(on_engine, deployment, lb.env["POLYSHOP_SEARCH_ENGINE"])


async def _fault_under_load(
    lb: Deployment, ledger: Ledger, fault: Fault, record: Callable[[Recovery], None]
) -> None:
    name = _program(lb, fault)
    stop_load = asyncio.Event()
    async with Workload(lb, FAULT_MIX, seed=zlib.crc32(str(fault).encode())) as load:
        background = asyncio.create_task(load.run_until(stop_load, CONCURRENCY))
        await asyncio.sleep(WARM_S)

        await asyncio.to_thread(_inject, lb, fault)
        down_at = time.monotonic()
        restarted = False
        try:
            # every kind of request meets the fault (requests that wait for a dead store
            # may outlast the hold: they are simply not counted in the window)
            each = asyncio.create_task(load.one_of_each())
            await asyncio.sleep(HOLD_S / 2)
            readiness = await _readiness(lb)
            await asyncio.sleep(HOLD_S / 2)
            async with private_stores(lb) as stores:
                backlog_while_down = await backlog(stores) if fault.service == "worker" else 0
            restart_at = time.monotonic()
            window = [
                s
                for s in load.samples
                if down_at <= s.started and s.started + s.seconds <= restart_at
            ]
            await asyncio.to_thread(_restart, lb, fault, name)
            restarted = True
        finally:
            if not restarted:  # the next test needs the whole instance again
                await asyncio.to_thread(_restart, lb, fault, name)
        service_back = time.monotonic() - restart_at
        await _wait_api_recovered(lb, fault)
        api_recovered = time.monotonic() - restart_at
        await asyncio.sleep(AFTER_S)
        stop_load.set()
        await asyncio.gather(background, each)
        await load.resolve_unknown_orders()
        ledger.merge(load.acks)

    async with private_stores(lb) as stores:
        await wait_converged(stores)
        converged = time.monotonic() - restart_at
        record(Recovery(str(fault), service_back, api_recovered, converged, _describe(window)))
        problems = fault.check(window)
        problems += [f"500 from {s.op}" for s in load.samples if s.status == 500]
        problems += [
            f"503 without Retry-After from {s.op}"
            for s in load.samples
            if s.status == 503 and not s.retry_after
        ]
        problems += await cache_problems(lb, stores)
        problems += await ledger_problems(ledger, stores)
        if await dead_letters(stores):
            problems.append(f"{await dead_letters(stores)} outbox events dead-lettered")
    summary = Counter((s.op, s.status) for s in window)
    assert window, "no request fell into the fault window"
    if fault.service in READYZ_LINE:  # the fault was real: /readyz saw the store down
        assert readiness[0] == 503
        assert f"{READYZ_LINE[fault.service]}: ok" not in readiness[1]
    if fault.service == "api":  # nobody was answered by the killed replica
        killed = f"127.0.0.1:{name.rsplit('_', 1)[1]}"
        assert not [s for s in window if _ok(s) and s.upstream.endswith(killed)]
    assert not problems, f"{fault}: {problems}\nwindow: {sorted(summary.items())}"
    if fault.service == "worker" and any(s.op in WRITES and _ok(s) for s in window):
        assert backlog_while_down > 0  # the writes waited in the outbox for the worker
    assert ledger.orders, "the load acknowledged no order"
