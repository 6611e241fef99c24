"""Fixtures of the soak: the app deployed the way `make run` runs it (2 API replicas
behind nginx, the worker, the notifications service) on its own dev stack instance
(`soak_stack`, tests/integration/conftest.py: no other test uses its services, whose
memory and connections the soak judges), against a
schema, Redis prefix, index prefix, bucket, broker prefix and lake catalog of its own,
with the worker's timed jobs made frequent: the ETL schedule every minute, image GC every
30 s, membership sweeps every 10 s. Everything is removed afterwards."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator

import pytest

import devstack
from bench.mixed_workload import Deployment, app_env, deploy
from tests.integration.fault.checks import settings_from_env
from tests.support.isolation import drop_everything


@pytest.fixture(scope="package")
def soak_deployment(soak_stack: devstack.Layout) -> Iterator[Deployment]:
    tag = uuid.uuid4().hex[:8]
    schema = f"soak_{tag}"
    extra = {
        "POLYSHOP_BROKER_PREFIX": f"soak{tag}.",
        "POLYSHOP_LAKE_METADATA_SCHEMA": f"soak_{tag}_lake",
        "POLYSHOP_LAKE_BUCKET": f"soak-{tag}",
        "POLYSHOP_ETL_SCHEDULE_ENABLED": "true",
        "POLYSHOP_ETL_CRON": "* * * * *",
        "POLYSHOP_IMAGE_GC_INTERVAL_S": "30",
        "POLYSHOP_IMAGE_GC_GRACE_S": "60",
        "POLYSHOP_MEMBERSHIP_SWEEP_S": "10",
        "POLYSHOP_ACCESS_LOG": "false",  # 30 minutes of access lines are not the subject
        # Every pool opens all its connections at start (min = max): a pool may grow
        # towards its maximum whenever the machine is slow for a moment, which is no leak.
        # With fixed pools the count is flat unless something opens connections outside
        # a pool, which is what the connection check looks for.
        "POLYSHOP_DATABASE_POOL_MIN": "10",
        "POLYSHOP_DATABASE_POOL_MAX": "10",
    }
    layout = soak_stack
    try:
        yield deploy(layout, replicas=2, schema=schema, products=40, extra_env=extra)
    finally:
        devstack.stop_app(progress=False, layout=layout)
        # also after a failed deploy: the schema, keys and index may exist already
        settings = settings_from_env(app_env(layout, schema, **extra))
        asyncio.run(drop_everything(settings))
        settings.duckdb_path.unlink(missing_ok=True)  # the published snapshot (a link)
        shutil.rmtree(f"{settings.duckdb_path}.snapshots", ignore_errors=True)
