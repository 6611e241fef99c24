"""Fixtures of the integration tests: real services, one isolated schema, Redis prefix,
index prefix, bucket and DuckDB file per test; and the private dev stack instances of the
fault suite and of the soak."""

from __future__ import annotations

import contextlib
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


# The private instances (.devstack/instances/<name>): the fault suite stops and kills
# its instance's services, and the soak judges the memory and connections of every one
# of its instance's services, so neither can use the session's stack, which the other
# tests share, nor each other's: each has its own, so the two run side by side (each one
# group of the xdist scheduler, tests/support/private_group.py). The fault suite's ports
# + 6000 put every service port above the kernel's ephemeral range (32768-60999), so a
# client socket cannot take a killed service's port before it restarts. (+100 would not
# do at all: OpenSearch's HTTP port would be the default instance's transport port.) The
# soak kills nothing; +6150 shares no port with +0, +2000 (benchmarks), +5600 or +6000.
FAULT_PORT_OFFSET = int(os.environ.get("POLYSHOP_FAULT_PORT_OFFSET", "6000"))
SOAK_PORT_OFFSET = int(os.environ.get("POLYSHOP_SOAK_PORT_OFFSET", "6150"))
KEEP_PRIVATE = os.environ.get("POLYSHOP_FAULT_KEEP_STACK", "") == "1"  # debugging: leave it up


@contextlib.contextmanager
def _private_instance(name: str, port_offset: int) -> Iterator[devstack.Layout]:
    """The instance up (OpenSearch with a 1 GB heap); stopped (by supervisord's pid) and
    emptied at the end."""
    layout = devstack.instance(name, port_offset, opensearch_heap="1g")
    others = {devstack.LAYOUT.port_offset, FAULT_PORT_OFFSET, SOAK_PORT_OFFSET} - {port_offset}
    for offset in others:
        if shared := devstack.Ports(port_offset).shared_with(devstack.Ports(offset)):
            raise pytest.UsageError(f"the {name} instance's ports {shared} are also +{offset}'s")
    try:
        devstack.up(progress=False, layout=layout)
        yield layout
    finally:
        if not KEEP_PRIVATE:
            devstack.down(progress=False, layout=layout)
            # the next run starts from an empty instance (initdb takes seconds)
            shutil.rmtree(layout.root / "data", ignore_errors=True)


@pytest.fixture(scope="session")
def private_stack() -> Iterator[devstack.Layout]:
    """The fault suite's instance (tests/integration/fault/). One worker runs the suite
    and boots the instance at the start of the session, while the others run the rest."""
    with _private_instance("fault", FAULT_PORT_OFFSET) as layout:
        yield layout


@pytest.fixture(scope="session")
def soak_stack() -> Iterator[devstack.Layout]:
    """The soak's instance (tests/integration/soak/), beside the fault suite's."""
    with _private_instance("soak", SOAK_PORT_OFFSET) as layout:
        yield layout


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
