"""Prometheus metrics, named after what they measure. Defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "polyshop_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "polyshop_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORE_UP = Gauge("polyshop_store_up", "1 if the store answered the last readiness check", ["store"])

# Product read cache (Redis) and its circuit breaker
CACHE_REQUESTS = Counter(
    "polyshop_cache_requests_total",
    "Product cache lookups by result: hit, miss, error (Redis failed), bypass (breaker open)",
    ["result"],
)
ORDER_CACHE_REQUESTS = Counter(
    "polyshop_order_cache_requests_total",
    "Order cache lookups (GET /orders/{id}) by result: hit, miss, error, bypass",
    ["result"],
)
CACHE_HANDOFFS = Counter(
    "polyshop_cache_handoffs_total",
    "Writes whose invalidation this replica could not send, by how the wait for the outbox"
    " relay ended: relayed (applied), relay_failing (the relay cannot reach Redis either),"
    " timeout",
    ["outcome"],
)
CACHE_FILLS = Counter(
    "polyshop_cache_fills_total",
    "Product cache fills after a miss: stored, refused (a write moved the version floor, or"
    " the row is older than it), slow (the load outlasted half the floor's lifetime)",
    ["outcome"],
)
CACHE_BREAKER_STATE = Gauge(
    "polyshop_cache_breaker_state",
    "Redis cache circuit breaker: 0 closed, 1 half-open, 2 open",
)

# Outbox relay (worker)
OUTBOX_BACKLOG = Gauge("polyshop_outbox_backlog", "Events waiting per consumer", ["consumer"])
OUTBOX_OLDEST_AGE = Gauge(
    "polyshop_outbox_oldest_age_seconds", "Age of the oldest waiting event", ["consumer"]
)
OUTBOX_RELAYED = Counter(
    "polyshop_outbox_relayed_total", "Events applied and acknowledged", ["consumer"]
)
OUTBOX_FAILURES = Counter(
    "polyshop_outbox_failures_total", "Event batches a consumer failed to apply", ["consumer"]
)
OUTBOX_DEAD_LETTERS = Counter(
    "polyshop_outbox_dead_letters_total", "Events moved to the dead letters", ["consumer"]
)

# Product images: images/metrics.py

# Product search index
SEARCH_COMMIT_TO_SEARCHABLE = Histogram(
    "polyshop_search_commit_to_searchable_seconds",
    "Outbox event age (commit -> applied to the search index); ~1 s refresh comes on top",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
SEARCH_DRIFT = Gauge(
    "polyshop_search_drift_documents",
    "Differences between Postgres and the search index found by the last reconcile run",
    ["kind"],
)
SEARCH_RECONCILE_RUNS = Counter("polyshop_search_reconcile_runs_total", "Reconcile runs finished")
SEARCH_CACHE_REQUESTS = Counter(
    "polyshop_search_cache_requests_total",
    "Search cache lookups by kind (products, suggest) and result: hit, miss, error (Redis"
    " failed: answered by the engine), bypass (Redis skipped after repeated failures)",
    ["kind", "result"],
)
SEARCH_CACHE_FILLS = Counter(
    "polyshop_search_cache_fills_total",
    "Search cache fills after a miss: stored, stale (the search generation moved while the"
    " engine answered: not stored), error (Redis failed)",
    ["outcome"],
)
SEARCH_CACHE_BUMPS = Counter(
    "polyshop_search_cache_generation_bumps_total",
    "Search generation bumps (index writes made visible: sync batches, reindex, repairs)",
)

LIST_CACHE_REQUESTS = Counter(
    "polyshop_product_list_cache_requests_total",
    "Product list page cache lookups by result: hit, miss, error (Redis failed: answered"
    " from Postgres), bypass (Redis skipped after repeated failures)",
    ["result"],
)
LIST_CACHE_BUMPS = Counter(
    "polyshop_product_list_cache_generation_bumps_total",
    "Catalog generation bumps (product writes committed), by where: request (after the"
    " commit of an API request or a storefront page), outbox (the relay), failed (Redis"
    " refused the writer's bump)",
    ["source"],
)

# ETL Postgres -> DuckDB (etl/, app/etl_schedule.py)
ETL_DATA_AGE = Gauge(
    "polyshop_etl_data_age_seconds",
    "Age of the newest data in the published analytical snapshot (since its extraction)",
)
ETL_LAST_SUCCESS = Gauge(
    "polyshop_etl_last_success_timestamp_seconds", "When the last successful ETL run ended"
)
ETL_RUN_DURATION = Histogram(
    "polyshop_etl_run_duration_seconds",
    "ETL run duration",
    ["kind", "status"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
ETL_ROWS = Counter("polyshop_etl_rows_total", "Rows written into the analytical copy", ["table"])

# Limits (app/middleware/ratelimit.py)
RATE_LIMIT_REJECTIONS = Counter(
    "polyshop_ratelimit_rejections_total",
    "Requests refused with 429, by the bucket that refused: address or key",
    ["bucket"],
)
RATE_LIMIT_ERRORS = Counter(
    "polyshop_ratelimit_errors_total",
    "Rate-limit checks that failed: redis (connection failed) and timeout (timed out twice)"
    " and skipped (Redis failed moments ago) were let through unlimited (fail open);"
    " timeout_retried was retried once and then decided (not fail open); timeout_late timed"
    " out while this process's event loop stalled and was retried (not fail open)",
    ["reason"],
)

# The garbage collector stops the event loop while it runs: every request in flight on
# the replica waits for it (app/gc_pauses.py)
GC_PAUSE = Histogram(
    "polyshop_gc_pause_seconds",
    "Garbage-collector pauses of this process, by generation collected",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
