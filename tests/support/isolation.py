"""Per-test isolation: each test gets its own Postgres schema, Redis key prefix, search
index prefix, bucket, lake catalog, broker prefix and DuckDB file (`app/scratch_stores.py`),
and they are removed afterwards."""

from __future__ import annotations

from pathlib import Path

from app.scratch_stores import drop_scratch_state, scratch_names, scratch_stores, scratch_tag
from app.settings import Settings

isolated_stores = scratch_stores
drop_everything = drop_scratch_state


def isolated_settings(env: dict[str, str], tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": env["POLYSHOP_DATABASE_URL"],
        "redis_url": env["POLYSHOP_REDIS_URL"],
        "search_engine": env["POLYSHOP_SEARCH_ENGINE"],
        "search_url": env["POLYSHOP_SEARCH_URL"],
        "s3_endpoint": env["POLYSHOP_S3_ENDPOINT"],
        "s3_access_key": env["POLYSHOP_S3_ACCESS_KEY"],
        "s3_secret_key": env["POLYSHOP_S3_SECRET_KEY"],
        **scratch_names(scratch_tag("t"), tmp_path / "analytics.duckdb"),
        # a loaded CI machine can keep a cold engine's answer past the 5 s default; a test
        # about the engine being down sets its own
        "search_timeout_s": 15.0,
        # a full collection per app started would add minutes to the suite
        "gc_freeze_at_startup": False,
    }
    for key, env_name in (
        ("broker_url", "POLYSHOP_BROKER_URL"),
        ("smtp_host", "POLYSHOP_SMTP_HOST"),
        ("smtp_port", "POLYSHOP_SMTP_PORT"),
        # the lake readers' credentials, created by the dev stack (read-only)
        ("lake_reader_s3_access_key", "POLYSHOP_LAKE_READER_S3_ACCESS_KEY"),
        ("lake_reader_s3_secret_key", "POLYSHOP_LAKE_READER_S3_SECRET_KEY"),
        ("lake_reader_database_user", "POLYSHOP_LAKE_READER_DATABASE_USER"),
    ):
        if env.get(env_name):
            values[key] = env[env_name]
    values.update(overrides)
    # model_validate reads no environment: the test sees exactly these values
    return Settings.model_validate(values)
