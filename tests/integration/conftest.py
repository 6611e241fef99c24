"""Fixtures of the integration tests: real services, one isolated schema, Redis prefix,
index prefix, bucket and DuckDB file per test; and the private dev stack instance of the
fault suite and the soak."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

import devstack
from app.main import create_app
from app.settings import Settings
from app.stores import Stores, open_stores
from tests.support.isolation import isolated_settings, isolated_stores
from tests.support.services import service_urls


@pytest.fixture(scope="session")
def service_env() -> Iterator[dict[str, str]]:
    """POLYSHOP_* variables of the real services for this test session."""
    with service_urls() as (_origin, env):
        yield env


# The private instance (.devstack/instances/fault): the fault suite stops and kills its
# services, and the soak judges the memory and connections of every one of them, so
# neither can use the session's stack, which the other tests share. Every port + 6000
# puts every service port above the kernel's ephemeral range (32768-60999), so a
# client socket cannot take a killed service's port before it restarts. (+100 would not
# do at all: OpenSearch's HTTP port would be the default instance's transport port.)
PRIVATE_INSTANCE = "fault"
PRIVATE_PORT_OFFSET = int(os.environ.get("POLYSHOP_FAULT_PORT_OFFSET", "6000"))
KEEP_PRIVATE = os.environ.get("POLYSHOP_FAULT_KEEP_STACK", "") == "1"  # debugging: leave it up


@pytest.fixture(scope="session")
def private_stack() -> Iterator[devstack.Layout]:
    """The private instance, up (OpenSearch with a 1 GB heap); stopped (by supervisord's
    pid) and emptied at the end. Its users (tests/integration/fault/, soak/) are one
    group of the xdist scheduler (tests/support/private_group.py): one worker runs them
    in turn, the fault suite first, and boots the instance at the start of the session
    while the other workers run the rest."""
    layout = devstack.instance(PRIVATE_INSTANCE, PRIVATE_PORT_OFFSET, opensearch_heap="1g")
    try:
        devstack.up(progress=False, layout=layout)
        yield layout
    finally:
        if not KEEP_PRIVATE:
            devstack.down(progress=False, layout=layout)
            # the next run starts from an empty instance (initdb takes seconds)
            shutil.rmtree(layout.root / "data", ignore_errors=True)


@pytest.fixture
def search_engine(request: pytest.FixtureRequest, service_env: dict[str, str]) -> str | None:
    """The engine a test runs on: None (the services' default) unless the test module
    parametrizes it indirectly (``tests.support.search.ON_EACH_ENGINE``)."""
    kind: str | None = getattr(request, "param", None)
    if kind is not None and not service_env.get(f"POLYSHOP_{kind.upper()}_URL"):
        pytest.skip(f"no {kind} node in this session (POLYSHOP_{kind.upper()}_URL unset)")
    return kind


@pytest.fixture
async def settings(
    service_env: dict[str, str], tmp_path: Path, search_engine: str | None
) -> AsyncIterator[Settings]:
    """Settings for one test: its own schema (migrated), key prefix, indices, bucket."""
    overrides: dict[str, object] = {}
    if search_engine is not None:
        overrides = {
            "search_engine": search_engine,
            "search_url": service_env[f"POLYSHOP_{search_engine.upper()}_URL"],
        }
    async with isolated_stores(isolated_settings(service_env, tmp_path, **overrides)) as s:
        yield s


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    async with open_stores(settings, application_name="polyshop-test") as s:
        yield s


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://polyshop.test") as c:
        yield c
