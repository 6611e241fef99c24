"""Readiness probes, retried with tenacity; a program that supervisord gave up on fails fast."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import psycopg
import redis
from minio import Minio, MinioAdmin
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException
from tenacity import Retrying, retry_if_not_exception_type, stop_after_delay, wait_fixed

from devstack import _supervisor
from devstack._paths import Layout
from devstack._services import (
    HOST,
    LAKE_READER_PG_ROLE,
    LAKE_READER_POLICY,
    LAKE_READER_PREFIXES,
    LAKE_READER_S3_SECRET,
    LAKE_READER_S3_USER,
    MINIO_ROOT_PASSWORD,
    MINIO_ROOT_USER,
    PG_DATABASE,
    PG_ROLE,
    RABBITMQ_PASSWORD,
    RABBITMQ_USER,
    database_url,
    elasticsearch_url,
    mailpit_url,
    ports,
    rabbitmq_management_url,
    s3_endpoint,
    search_url,
)

TIMEOUTS = {
    "postgres": 60.0,
    "redis": 30.0,
    "opensearch": 240.0,
    "elasticsearch": 240.0,
    "minio": 90.0,
    "epmd": 20.0,
    "rabbitmq": 300.0,  # a restart after a crash recovers quorum queues first: slow here
    "mailpit": 30.0,
}
DEAD_STATES = {"FATAL", "EXITED", "STOPPED"}


class ServiceFailed(_supervisor.StackError):
    """The program is not running any more; waiting longer would not help."""


def log_tail(layout: Layout, name: str, lines: int = 20) -> str:
    path = layout.logs / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _check_alive(layout: Layout, name: str) -> None:
    state = _supervisor.process_info(layout)[name]["statename"]
    if state in DEAD_STATES:
        raise ServiceFailed(f"{name} is {state}; last log lines:\n{log_tail(layout, name)}")


def bootstrap_postgres(layout: Layout) -> None:
    """Create the ``polyshop`` role and database if missing (idempotent)."""
    admin = f"postgresql://postgres@{HOST}:{ports(layout).postgres}/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [PG_ROLE]).fetchone() is None:
            conn.execute(f'CREATE ROLE "{PG_ROLE}" LOGIN SUPERUSER')  # dev stack only
        reader = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [LAKE_READER_PG_ROLE])
        if reader.fetchone() is None:  # no privileges of its own: the ETL grants SELECT
            conn.execute(f'CREATE ROLE "{LAKE_READER_PG_ROLE}" LOGIN')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE])
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}" OWNER "{PG_ROLE}"')


def probe_postgres(layout: Layout) -> None:
    bootstrap_postgres(layout)
    with psycopg.connect(database_url(layout), connect_timeout=2) as conn:
        conn.execute("SELECT 1").fetchone()


def probe_redis(layout: Layout) -> None:
    client = redis.Redis(
        host=HOST, port=ports(layout).redis, socket_timeout=2, socket_connect_timeout=2
    )
    try:
        if not client.ping():
            raise ConnectionError("redis PING failed")
    finally:
        client.close()


def _probe_cluster(name: str, url: str) -> None:
    response = httpx.get(
        f"{url}/_cluster/health",
        params={"wait_for_status": "yellow", "timeout": "5s"},
        timeout=10,
    )
    response.raise_for_status()
    if response.json()["status"] not in ("yellow", "green"):
        raise ConnectionError(f"{name} health is {response.json()['status']}")


def probe_opensearch(layout: Layout) -> None:
    _probe_cluster("opensearch", search_url(layout))


def probe_elasticsearch(layout: Layout) -> None:
    _probe_cluster("elasticsearch", elasticsearch_url(layout))


def lake_reader_policy(prefixes: tuple[str, ...]) -> dict[str, object]:
    """Read the objects under `prefixes` ("bucket/prefix/", wildcards allowed), list
    those prefixes, and nothing else (no put, no delete)."""
    buckets = sorted({p.split("/", 1)[0] for p in prefixes})
    keys = sorted({p.split("/", 1)[1] + "*" for p in prefixes})
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{p}*" for p in prefixes],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{b}" for b in buckets],
                "Condition": {"StringLike": {"s3:prefix": keys}},
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{b}" for b in buckets],
            },
        ],
    }


def bootstrap_minio(layout: Layout) -> None:
    """The lake readers' user and its read-only policy (idempotent)."""
    admin = MinioAdmin(
        endpoint=s3_endpoint(layout),
        credentials=StaticProvider(MINIO_ROOT_USER, MINIO_ROOT_PASSWORD),
        secure=False,
    )
    admin.policy_add(LAKE_READER_POLICY, policy=lake_reader_policy(LAKE_READER_PREFIXES))
    admin.user_add(LAKE_READER_S3_USER, LAKE_READER_S3_SECRET)
    try:
        admin.attach_policy([LAKE_READER_POLICY], user=LAKE_READER_S3_USER)
    except MinioAdminException as exc:
        if "already" not in str(exc).lower():  # attached by an earlier start
            raise


def probe_minio(layout: Layout) -> None:
    endpoint = s3_endpoint(layout)
    httpx.get(f"http://{endpoint}/minio/health/live", timeout=2).raise_for_status()
    Minio(endpoint, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, secure=False).list_buckets()
    bootstrap_minio(layout)


def _tcp_connect(port: int) -> None:
    with socket.create_connection((HOST, port), timeout=2):
        pass


def probe_epmd(layout: Layout) -> None:
    _tcp_connect(ports(layout).epmd)


def probe_rabbitmq(layout: Layout) -> None:
    """AMQP listens and the management API answers with the node running (it is up
    only once the boot steps finished)."""
    _tcp_connect(ports(layout).rabbitmq)
    response = httpx.get(
        f"{rabbitmq_management_url(layout)}/api/health/checks/alarms",
        auth=(RABBITMQ_USER, RABBITMQ_PASSWORD),
        timeout=5,
    )
    response.raise_for_status()


def probe_mailpit(layout: Layout) -> None:
    _tcp_connect(ports(layout).mailpit_smtp)
    httpx.get(f"{mailpit_url(layout)}/readyz", timeout=2).raise_for_status()


PROBES: dict[str, Callable[[Layout], None]] = {
    "postgres": probe_postgres,
    "redis": probe_redis,
    "opensearch": probe_opensearch,
    "elasticsearch": probe_elasticsearch,
    "minio": probe_minio,
    "epmd": probe_epmd,
    "rabbitmq": probe_rabbitmq,
    "mailpit": probe_mailpit,
}


def wait_ready(layout: Layout, name: str, timeout: float | None = None) -> None:
    """Retry the service's probe until it passes; fail at once if its process died."""
    probe = PROBES[name]

    def attempt_once() -> None:
        _check_alive(layout, name)
        probe(layout)

    for attempt in Retrying(
        stop=stop_after_delay(timeout or TIMEOUTS[name]),
        wait=wait_fixed(0.25),
        retry=retry_if_not_exception_type(ServiceFailed),
        reraise=True,
    ):
        with attempt:
            attempt_once()


def wait_http_ok(url: str, timeout: float) -> None:
    """Retry ``GET url`` until it answers 200 (the app's replicas and nginx)."""

    def probe() -> None:
        httpx.get(url, timeout=2).raise_for_status()

    for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.2), reraise=True):
        with attempt:
            probe()
