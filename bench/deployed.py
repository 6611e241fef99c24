"""The app deployed as `make run` lays it out, for the hey benchmarks: API replicas behind
nginx (plus the worker) on the dev stack of this environment, against a schema, Redis
prefix, index prefix and bucket of this run's own, all removed afterwards.

`deployed` yields the `Deployment` (bench/mixed_workload.py); `reconfigure` restarts the
replicas with other settings (the limiter on or off, the cache off) on the same data;
`replica_metrics` reads one counter from every replica's own /metrics (nginx would
answer from one replica only).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterator, Mapping

import httpx

import devstack
from app.settings import Settings
from bench.isolation import drop_bench_state
from bench.mixed_workload import Deployment, app_env, deploy


@contextlib.contextmanager
def deployed(
    name: str,
    *,
    replicas: int = 2,
    products: int = 200,
    settings: Mapping[str, str] | None = None,
    layout: devstack.Layout = devstack.LAYOUT,
) -> Iterator[Deployment]:
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    env = app_env(layout, schema)  # the names that `deploy` gives the app processes
    own = Settings().model_copy(
        update={
            "database_schema": schema,
            "redis_prefix": env["POLYSHOP_REDIS_PREFIX"],
            "search_index_prefix": env["POLYSHOP_SEARCH_INDEX_PREFIX"],
            "s3_bucket": env["POLYSHOP_S3_BUCKET"],
            "duckdb_path": env["POLYSHOP_DUCKDB_PATH"],
        }
    )
    try:
        yield deploy(
            layout,
            replicas,
            schema=schema,
            products=products,
            extra_env={"POLYSHOP_ACCESS_LOG": "false", **(settings or {})},
        )
    finally:
        devstack.stop_app(progress=False, layout=layout)
        asyncio.run(drop_bench_state(own))


def reconfigure(deployment: Deployment, settings: Mapping[str, str]) -> Deployment:
    """The same deployment with `settings` on top (its replicas restart with them)."""
    env = {**deployment.env, **settings}
    replicas = len(devstack.api_replicas(layout=deployment.layout))
    devstack.run_app(progress=False, replicas=replicas, env=env, layout=deployment.layout)
    return Deployment(
        deployment.layout,
        deployment.base_url,
        env,
        deployment.admin_key,
        deployment.customer_key,
        deployment.product_ids,
    )


def replica_urls(deployment: Deployment) -> list[str]:
    return [
        f"http://127.0.0.1:{key.rsplit('_', 1)[1]}"
        for key in devstack.api_replicas(layout=deployment.layout)
    ]


def parse_counter(metrics: str, name: str) -> dict[str, float]:
    """Samples of counter `name` in a Prometheus text page, by label set ("" for none)."""
    found: dict[str, float] = {}
    pattern = re.compile(rf"^{re.escape(name)}(?:_total)?(\{{[^}}]*\}})?\s+([0-9.eE+-]+)$")
    for line in metrics.splitlines():
        match = pattern.match(line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def replica_metrics(deployment: Deployment, name: str) -> dict[str, float]:
    """Counter `name` summed over the replicas, by label set."""
    total: dict[str, float] = {}
    for url in replica_urls(deployment):
        page = httpx.get(f"{url}/metrics", timeout=10).text
        for labels, value in parse_counter(page, name).items():
            total[labels] = total.get(labels, 0.0) + value
    return total
