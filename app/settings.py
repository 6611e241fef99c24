"""The one settings object. Every value comes from `POLYSHOP_*` environment variables,
`.env`, or the env file the native dev stack writes (`.devstack/services.env`)."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# ISO 4217 currencies whose minor unit is not a hundredth (0, 3 or 4 decimals). Prices
# are stored in hundredths of the unit (`price_minor`), so a shop cannot list these.
NOT_TWO_DECIMALS = frozenset(
    {
        # 0 decimals
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
        # 3 and 4 decimals
        "BHD",
        "IQD",
        "JOD",
        "KWD",
        "LYD",
        "OMR",
        "TND",
        "CLF",
        "UYW",
    }
)

DEV_S3_SECRET = "polyshop-dev-secret"
DEV_KEY_PEPPER = "polyshop-dev-pepper"


def _loopback() -> list[IPvAnyNetwork]:
    return [IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="POLYSHOP_",
        env_file=(".devstack/services.env", ".env"),
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = Field(
        "development", description="production refuses dev secrets and logs JSON"
    )
    service_name: str = Field("polyshop-api", description="application_name seen by Postgres")

    # PostgreSQL: the source of truth
    database_url: str = Field(
        "postgresql://polyshop@127.0.0.1:55432/polyshop", description="the source of truth"
    )
    database_schema: str = Field(
        "public", pattern=r"^[a-z_][a-z0-9_]*$", description="schema holding the tables"
    )
    database_pool_min: int = Field(1, ge=0, description="connections kept open per process")
    database_pool_max: int = Field(10, ge=1, description="connections at most per process")
    database_statement_timeout_ms: int = Field(15_000, gt=0, description="per statement")
    database_pool_timeout_s: float = Field(
        5.0, gt=0, description="longest wait for a pooled connection (then 503)"
    )
    database_fail_fast_s: float = Field(
        2.0,
        ge=0,
        description="after a failed connection attempt, checkouts fail at once (503) for"
        " this long; 0 turns it off",
    )

    # Redis: read cache
    redis_url: str = Field("redis://127.0.0.1:56379/0", description="read cache, rate limits")
    redis_prefix: str = Field("polyshop:", description="prefix of every Redis key")
    redis_timeout_s: float = Field(0.5, gt=0, description="connect and socket timeout")
    redis_max_connections: int = Field(
        512,
        ge=1,
        description="Redis connections per process; past it a call waits for a free one"
        " (at most the timeout) instead of failing",
    )
    cache_ttl_s: int = Field(300, gt=0, description="product cache entry lifetime")
    cache_ttl_jitter: float = Field(0.1, ge=0, le=1, description="+/- fraction of the TTL")
    cache_enabled: bool = Field(True, description="false: product reads skip Redis (benchmarks)")
    cache_lease_ms: int = Field(2000, gt=0, description="cold-key lease: one replica loads")
    cache_lease_wait_ms: int = Field(1000, ge=0, description="how long others wait for it")
    cache_breaker_threshold: int = Field(5, ge=1, description="Redis failures that open it")
    cache_breaker_open_s: float = Field(5.0, gt=0, description="open time before a probe")
    cache_floor_ttl_s: float = Field(
        30.0, gt=0, description="a version floor lives this long after its last write"
    )
    cache_generation_check_s: float = Field(
        5.0, gt=0, description="reads re-read the data generation this often (restore)"
    )
    cache_handoff_wait_s: float = Field(
        1.0,
        ge=0,
        description="a write whose invalidation this replica could not send waits this long"
        " at most for the outbox relay to apply it (0: answer at once)",
    )
    bench_routes: bool = Field(False, description="hidden routes used by bench/ only")

    idempotency_retention_h: float = Field(
        24, gt=0, description="Idempotency-Key replay window (then purged by the worker)"
    )

    # Outbox relay (worker)
    outbox_batch_size: int = Field(200, ge=1, le=10_000)
    outbox_max_attempts: int = Field(
        25, ge=1, description="then the event is dead-lettered (about 10 min of outage)"
    )
    outbox_backoff_s: float = Field(1.0, gt=0, description="first retry delay, doubled each time")
    outbox_backoff_max_s: float = Field(
        30.0, gt=0, description="the retry delay never exceeds this (a store back is retried soon)"
    )
    outbox_poll_s: float = Field(5.0, gt=0, description="fallback poll when no NOTIFY arrives")

    # Jobs on RabbitMQ (jobs/, notifications/, memberships/; docs/jobs.md)
    broker_url: SecretStr = Field(
        SecretStr("amqp://polyshop:polyshop-dev-secret@127.0.0.1:55672/"),
        description="RabbitMQ AMQP URL (with credentials and vhost)",
    )
    broker_prefix: str = Field(
        "polyshop.",
        pattern=r"^[a-z0-9_.-]*$",
        description="prefix of every exchange and queue name (tests use their own)",
    )
    broker_delivery_limit: int = Field(
        5, ge=1, description="deliveries of one message before it is dead-lettered"
    )
    broker_prefetch: int = Field(16, ge=1, description="unacked messages per consumer")
    broker_timeout_s: float = Field(10.0, gt=0, description="connect and confirm timeout")
    broker_confirms: bool = Field(
        True, description="wait for publisher confirms (false only for benchmarks)"
    )
    smtp_host: str = Field("127.0.0.1", description="SMTP server (Mailpit in development)")
    smtp_port: int = Field(51025, ge=1, le=65535, description="SMTP port")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "none", description="plain, STARTTLS after connecting, or TLS from the start (465)"
    )
    smtp_username: str = Field("", description="SMTP login; empty: no AUTH")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password")
    smtp_timeout_s: float = Field(10.0, gt=0, description="per SMTP command")
    smtp_connections: int = Field(4, ge=1, description="SMTP connections per service process")
    mail_from: str = Field("polyshop <shop@polyshop.test>", description="From: of every e-mail")
    mail_domain: str = Field(
        "polyshop.test", description="right-hand side of the Message-IDs derived from event ids"
    )
    notifications_metrics_port: int = Field(
        9102, ge=0, description="notifications service /metrics port; 0: off"
    )
    membership_reminder_days: float = Field(
        3, ge=0, description="a renewal reminder is due this many days before the renewal"
    )
    membership_sweep_s: float = Field(
        30.0, gt=0, description="worker: how often due reminders and renewals are looked for"
    )

    # Search engine
    search_engine: Literal["opensearch", "elasticsearch"] = Field(
        "opensearch", description="which client and engine"
    )
    search_url: str = Field("http://127.0.0.1:59201", description="engine HTTP endpoint")
    search_index_prefix: str = Field(
        "polyshop", pattern=r"^[a-z0-9_-]+$", description="prefix of index and alias names"
    )
    search_timeout_s: float = Field(5.0, gt=0, description="per request to the engine")
    product_list_cache_ttl_s: float = Field(
        30.0,
        ge=0,
        description="product list pages (`GET /products`) are cached in Redis for this long"
        " under the catalog generation, which every product write bumps after its commit"
        " (and the outbox relay again); the TTL bounds only a bump that failed (0: off)",
    )
    search_cache_ttl_s: float = Field(
        60.0,
        ge=0,
        description="search answers (search, suggest, the storefront's search) are cached in"
        " Redis this long at most; the index sync invalidates them sooner (docs/search.md);"
        " 0: off",
    )

    # MinIO / S3: product images
    s3_endpoint: str = Field("127.0.0.1:59000", description="MinIO/S3 host:port")
    s3_access_key: str = Field("polyshop", description="MinIO/S3 access key")
    s3_secret_key: SecretStr = Field(SecretStr(DEV_S3_SECRET), description="MinIO/S3 secret")
    s3_secure: bool = Field(False, description="use HTTPS to reach MinIO/S3")
    s3_bucket: str = Field(
        "polyshop-images",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="bucket of product images (created at startup)",
    )
    s3_region: str = Field("us-east-1", description="S3 region name")

    # Product images (images/)
    image_max_bytes: int = Field(10 * 1024 * 1024, gt=0, description="multipart upload limit")
    image_direct_max_bytes: int = Field(100 * 1024 * 1024, gt=0, description="presigned limit")
    image_max_pixels: int = Field(40_000_000, gt=0, description="decompression-bomb guard")
    image_rendition_widths: list[int] = Field(default_factory=lambda: [200, 800])
    image_renditions: Literal["inline", "worker"] = Field(
        "inline",
        description="make renditions (and decode a JPEG kept as uploaded) in the upload"
        " request, or later in the worker (docs/images.md)",
    )
    image_renditions_poll_s: float = Field(1.0, gt=0, description="worker: look for work")
    image_url_mode: Literal["presigned", "public"] = "presigned"
    image_public_base_url: str = Field("", description="CDN in front of a public-read bucket")
    image_url_expiry_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    image_upload_expiry_s: int = Field(900, ge=60, description="presigned PUT validity")
    image_gc_grace_s: float = Field(3600, ge=0, description="orphan blobs younger stay")
    image_gc_interval_s: float = Field(600, gt=0)

    # DuckDB analytical copy
    duckdb_path: Path = Field(
        Path(".devstack/data/analytics/polyshop.duckdb"), description="analytical copy"
    )

    # ETL Postgres -> DuckDB (etl/) and the SQL sandbox (analytics/)
    etl_cron: str = Field("*/15 * * * *", description="when the worker runs the ETL")
    etl_schedule_enabled: bool = True
    etl_tables: Literal["shop", "tpch"] = "shop"
    etl_snapshot_grace_s: float = 300.0
    etl_threads: int = 2
    etl_memory_limit: str = "1GB"
    etl_engine_max_runs: int = Field(
        1,
        ge=0,
        description="runs one DuckDB writer engine serves before it is closed and its memory"
        " returned (0: kept for the process's life, ~0.12 s less CPU per run, 30-70 MiB more"
        " resident)",
    )
    etl_test_pause_s: float = Field(0.0, description="test hook: sleep after each table")
    etl_test_pause_after_commit_s: float = Field(
        0.0, description="test hook: sleep after the lake commit, before the run is recorded"
    )
    analytics_query_timeout_s: float = 10.0
    analytics_max_rows: int = 10_000
    analytics_memory_limit: str = "512MB"
    analytics_threads: int = 2

    # The analytical copy as a DuckLake (analytics/lake.py, etl/lakehouse.py)
    analytics_backend: Literal["file", "ducklake"] = Field(
        "file",
        description="file: DuckDB snapshot files on one host; ducklake: catalog in Postgres,"
        " Parquet on MinIO/S3, readable from every host (docs/analytics.md)",
    )
    lake_metadata_schema: str = Field(
        "polyshop_lake",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Postgres schema of the DuckLake catalog",
    )
    lake_bucket: str = Field(
        "polyshop-lake",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="bucket of the lake's Parquet files (on the POLYSHOP_S3_* endpoint)",
    )
    lake_prefix: str = Field("analytics/", description="key prefix of the lake's files")
    # The readers' credentials (API replicas): they cannot write the lake. Unset: the
    # readers use the writer's (POLYSHOP_S3_* and the database URL's role).
    lake_reader_s3_access_key: str | None = Field(
        None, description="MinIO/S3 key of the lake's readers (a policy reading the prefix only)"
    )
    lake_reader_s3_secret_key: SecretStr | None = Field(None, description="its secret")
    lake_reader_database_user: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Postgres role the readers read the catalog as; the ETL grants it"
        " USAGE and SELECT on the catalog schema, and nothing else",
    )
    lake_reader_database_password: SecretStr | None = Field(None, description="its password")
    lake_snapshot_retention_h: float = Field(
        24, gt=0, description="lake snapshots older than this are expired (time travel window)"
    )
    lake_maintenance_cron: str = Field(
        "41 * * * *", description="when the worker expires snapshots and merges files"
    )

    # Limits (app/middleware/): token buckets in Redis, shared by every API replica
    rate_limit_enabled: bool = Field(True, description="false: no rate limiting (benchmarks)")
    rate_limit_key_capacity: int = Field(1200, ge=1, description="burst per API key")
    rate_limit_key_per_s: float = Field(600.0, gt=0, description="refill per API key")
    rate_limit_address_capacity: int = Field(2400, ge=1, description="burst per client address")
    rate_limit_address_per_s: float = Field(1200.0, gt=0, description="refill per address")
    rate_limit_address_in_proxy: bool = Field(
        False,
        description="true where one nginx fronts every replica and limits per address"
        " itself (limit_req, deploy/nginx*.conf): the app then limits API keys only;"
        " `make run` and docker-compose set it",
    )
    rate_limit_fail_open_s: float = Field(
        5.0, ge=0, description="Redis failed: requests pass unlimited for this long"
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=_loopback,
        description="addresses/CIDRs of the proxies in front (nginx) whose X-Forwarded-For"
        " and X-Forwarded-Proto are believed: the client address of the rate limit and"
        " the sign-in throttle, HTTPS for the cookies; from any other peer they are ignored",
    )
    max_body_bytes: int = Field(1024 * 1024, gt=0, description="request body limit (JSON)")
    access_log: bool = Field(True, description="one structured log line per request")
    gc_freeze_at_startup: bool = Field(
        True,
        description="after startup, move the startup heap out of the garbage collector's"
        " reach (gc.freeze): a full collection then pauses the replica for milliseconds, not"
        " ~100 ms (docs/benchmarks.md); off in test processes that start many apps",
    )
    currencies: list[str] = Field(
        default_factory=lambda: ["USD", "EUR", "GBP"],
        description="ISO 4217 codes products may be priced in (2-decimal currencies only)",
    )
    worker_metrics_port: int = Field(9101, ge=0, description="worker /metrics port; 0: off")

    # API keys are stored as HMAC-SHA256(pepper, key)
    api_key_pepper: SecretStr = Field(
        SecretStr(DEV_KEY_PEPPER), description="HMAC key for stored API-key hashes"
    )
    api_key_cache_ttl_s: float = Field(
        10.0,
        ge=0,
        description="valid keys are kept in memory this long at most (a revocation reaches"
        " every replica at once by NOTIFY, and within this bound in any case); 0: off",
    )

    @model_validator(mode="after")
    def _two_decimal_currencies(self) -> Settings:
        for code in self.currencies:
            if len(code) != 3 or not code.isascii() or not code.isupper():
                raise ValueError(f"currencies: {code!r} is not an ISO 4217 code")
            if code in NOT_TWO_DECIMALS:
                raise ValueError(
                    f"currencies: {code} does not have 2 decimal places; prices are stored"
                    " in hundredths"
                )
        if not self.currencies:
            raise ValueError("currencies: at least one")
        return self

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            for name, value in (
                ("s3_secret_key", self.s3_secret_key),
                ("api_key_pepper", self.api_key_pepper),
                ("broker_url", self.broker_url),
            ):
                if any(dev in value.get_secret_value() for dev in (DEV_S3_SECRET, DEV_KEY_PEPPER)):
                    raise ValueError(f"{name} must be set to a real secret in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
