"""Where the test services come from, in this order:

1. URLs from the environment (`POLYSHOP_DATABASE_URL`, ... all of them set);
2. testcontainers, when a Docker engine answers;
3. the project's native stack (`devstack`), used as it is when it runs, else started
   here and stopped again at the end of the session (by pid, through supervisord).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

ENV_VARS = (
    "POLYSHOP_DATABASE_URL",
    "POLYSHOP_REDIS_URL",
    "POLYSHOP_SEARCH_ENGINE",
    "POLYSHOP_SEARCH_URL",
    "POLYSHOP_S3_ENDPOINT",
    "POLYSHOP_S3_ACCESS_KEY",
    "POLYSHOP_S3_SECRET_KEY",
    "POLYSHOP_BROKER_URL",
    "POLYSHOP_SMTP_HOST",
    "POLYSHOP_SMTP_PORT",
    "POLYSHOP_MAILPIT_URL",
)


# Optional: the nodes of each engine, for the tests that run on both.
ENGINE_URL_VARS = ("POLYSHOP_OPENSEARCH_URL", "POLYSHOP_ELASTICSEARCH_URL")


def _from_environment() -> dict[str, str] | None:
    if all(os.environ.get(v) for v in ENV_VARS):
        env = {v: os.environ[v] for v in ENV_VARS}
        env.update({v: os.environ[v] for v in ENGINE_URL_VARS if os.environ.get(v)})
        return env
    return None


def docker_available() -> bool:
    """True when a Docker engine answers. The socket is probed first with a socket we
    close ourselves: the Docker SDK leaves a failed connection's socket to the garbage
    collector, which would surface as a ResourceWarning in some later test."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(3)
                probe.connect(host.removeprefix("unix://"))
        except OSError:
            return False
    try:
        import docker

        client = docker.from_env(timeout=3)
    except Exception:
        return False
    try:
        client.ping()
    except Exception:
        return False
    finally:
        client.close()
    return True


@contextlib.contextmanager
def _testcontainers() -> Iterator[dict[str, str]]:
    from testcontainers.minio import MinioContainer
    from testcontainers.opensearch import OpenSearchContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with (
        PostgresContainer("postgres:16-alpine", driver=None) as pg,
        RedisContainer("redis:7-alpine") as redis,
        OpenSearchContainer("opensearchproject/opensearch:2.19.1") as search,
        MinioContainer("minio/minio:RELEASE.2025-04-22T22-12-26Z") as minio,
    ):
        mcfg = minio.get_config()
        yield {
            "POLYSHOP_DATABASE_URL": pg.get_connection_url(),
            "POLYSHOP_REDIS_URL": (
                f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
            ),
            "POLYSHOP_SEARCH_ENGINE": "opensearch",
            "POLYSHOP_SEARCH_URL": (
                f"http://{search.get_container_host_ip()}:{search.get_exposed_port(9200)}"
            ),
            "POLYSHOP_OPENSEARCH_URL": (
                f"http://{search.get_container_host_ip()}:{search.get_exposed_port(9200)}"
            ),
            "POLYSHOP_S3_ENDPOINT": mcfg["endpoint"],
            "POLYSHOP_S3_ACCESS_KEY": mcfg["access_key"],
            "POLYSHOP_S3_SECRET_KEY": mcfg["secret_key"],
        }


@contextlib.contextmanager
def _native_stack() -> Iterator[dict[str, str]]:
    import devstack

    if devstack.is_up():
        # `make test` brought it up (and waited until it was ready). No `up` again: in a
        # pytest-xdist worker, another worker may be deploying an app on the stack just
        # now (test_load_curve.py), and `up` rewrites the supervisord and nginx config.
        yield devstack.service_env()
        return
    env = devstack.up(progress=False)
    try:
        yield env
    finally:
        devstack.down()


@contextlib.contextmanager
def service_urls() -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (where the services come from, the POLYSHOP_* variables to reach them)."""
    env = _from_environment()
    if env is not None:
        yield "environment", env
    elif docker_available():
        with _testcontainers() as env:
            yield "testcontainers", env
    else:
        with _native_stack() as env:
            yield "devstack", env
