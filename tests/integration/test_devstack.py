"""The native dev stack: supervised services that fault tests can stop and start.

Needs the stack from `python -m devstack up` (as `make test` does); skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import devstack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not devstack.is_up(), reason="native dev stack not running"),
]


def _ping() -> bool:
    client = redis.Redis.from_url(devstack.service_env()["POLYSHOP_REDIS_URL"], socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.fixture
def redis_restored() -> Iterator[None]:
    yield
    devstack.start_service("redis")  # whatever happened, leave Redis running


def test_status_reports_every_service_running() -> None:
    states = {s.name: s for s in devstack.status()}
    for name in devstack.SERVICES:
        assert states[name].state == "RUNNING", states[name]
        assert states[name].pid
    assert devstack.is_up()


def test_services_env_file_matches_the_api() -> None:
    text = devstack.LAYOUT.services_env.read_text()
    assert dict(line.split("=", 1) for line in text.splitlines()) == devstack.service_env()


@pytest.mark.stack_exclusive
def test_stop_and_start_redis(redis_restored: None) -> None:
    assert _ping()
    devstack.stop_service("redis")
    assert not _ping()
    assert not devstack.is_up()
    devstack.start_service("redis")
    assert _ping()


@pytest.mark.stack_exclusive
def test_killed_redis_stays_down_until_started(redis_restored: None) -> None:
    devstack.kill_service("redis")
    assert not _ping()
    assert {s.name: s.state for s in devstack.status()}["redis"] != "RUNNING"
    devstack.start_service("redis")
    assert _ping()


def test_opensearch_config_dir_is_the_nodes() -> None:
    config = devstack.opensearch_config_dir()
    assert (config / "opensearch.yml").exists()
    assert (
        f"transport.port: {devstack.ports().opensearch_transport}"
        in (config / "opensearch.yml").read_text()
    )
