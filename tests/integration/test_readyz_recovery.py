"""Stopping a real service turns /readyz to 503 naming it; starting it again turns the
same running app green, with no restart (the foundation's definition of done).

Needs the native stack (`make test` starts it); skipped where the services come from
elsewhere, since it stops and starts them through supervisord.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

import devstack

SERVICE_TO_STORE = {
    "redis": "redis",
    "minio": "blobs",
    "postgres": "postgres",
    "opensearch": "search",
    "elasticsearch": "search",
}
# the app under test talks to the engine that is stopped (the `search_engine` fixture
# points its settings at that node); the other services run under the default engine
CASES = [
    pytest.param(service, service if store == "search" else None, id=service)
    for service, store in SERVICE_TO_STORE.items()
]


@pytest.fixture
def native_stack(service_env: dict[str, str]) -> None:
    """Skip unless this session's services are the native stack's (it stops them)."""
    ours = devstack.service_env()["POLYSHOP_DATABASE_URL"]
    if not devstack.is_up() or service_env["POLYSHOP_DATABASE_URL"] != ours:
        pytest.skip("needs the native dev stack serving this test session")


async def _ready_lines(client: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    response = await client.get("/readyz")
    lines = dict(line.split(": ", 1) for line in response.text.strip().splitlines())
    return response.status_code, lines


async def _wait_green(client: httpx.AsyncClient, timeout_s: float = 60) -> dict[str, str]:
    """Readiness is polled the way a load balancer would, until every store is ok."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    status, lines = await _ready_lines(client)
    while status != 200 and loop.time() < deadline:
        await asyncio.sleep(0.5)
        status, lines = await _ready_lines(client)
    assert status == 200, lines
    return lines


@pytest.mark.stack_exclusive
@pytest.mark.parametrize(("service", "search_engine"), CASES, indirect=["search_engine"])
async def test_fault_readyz_names_a_stopped_service_and_recovers(
    native_stack: None, client: httpx.AsyncClient, service: str, search_engine: str | None
) -> None:
    await _wait_green(client)
    try:
        devstack.stop_service(service)
        status, lines = await _ready_lines(client)
        assert status == 503
        store = SERVICE_TO_STORE[service]
        assert lines[store].startswith("FAIL"), lines
        others = {k: v for k, v in lines.items() if k != store}
        assert all(v.startswith("ok") for v in others.values()), lines
    finally:
        await asyncio.to_thread(devstack.start_service, service)
    lines = await _wait_green(client)
    assert all(v.startswith("ok") for v in lines.values())
