"""Scratch schemas (every test's) are created from the migrations' offline SQL in one
transaction (`storage.migrate.create_schema_at_heads`); the shop's schema is migrated
online by Alembic (`storage.migrate.upgrade`, `polyshop migrate`). Both must leave the
same schema: tables, columns, constraints, indexes, functions, triggers and version."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from storage import migrate

CATALOG = {
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, is_nullable,
               column_default, is_identity, character_maximum_length, numeric_precision
        FROM information_schema.columns WHERE table_schema = %(s)s
        ORDER BY table_name, ordinal_position""",
    "constraints": """
        SELECT rel.relname, con.conname,
               replace(pg_get_constraintdef(con.oid), %(s)s || '.', '') AS def
        FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
        WHERE con.connamespace = %(s)s::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, replace(indexdef, %(s)s || '.', '') AS def
        FROM pg_indexes WHERE schemaname = %(s)s ORDER BY 1, 2""",
    "functions": """
        SELECT proname, replace(pg_get_functiondef(oid), %(s)s || '.', '') AS def FROM pg_proc
        WHERE pronamespace = %(s)s::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text AS rel, tgname, replace(pg_get_triggerdef(oid),
               %(s)s || '.', '') AS def
        FROM pg_trigger WHERE NOT tgisinternal
          AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = %(s)s::regnamespace)
        ORDER BY 2""",
    "views": """
        SELECT table_name, view_definition FROM information_schema.views
        WHERE table_schema = %(s)s ORDER BY 1""",
}


def _describe(url: str, schema: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        described = {
            name: conn.execute(sql, {"s": schema}).fetchall() for name, sql in CATALOG.items()
        }
        described["version"] = conn.execute(
            f'SELECT version_num FROM "{schema}".alembic_version ORDER BY 1'
        ).fetchall()
    for rows in described.values():  # a trigger's table is named with its schema
        for row in rows:
            if isinstance(row.get("rel"), str):
                row["rel"] = row["rel"].removeprefix(f"{schema}.")
    return described


async def test_a_scratch_schema_equals_the_migrated_one(service_env: dict[str, str]) -> None:
    url = service_env["POLYSHOP_DATABASE_URL"]
    online, offline = (f"mig_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("on", "off"))
    try:
        await asyncio.to_thread(migrate.upgrade, url, online)
        await asyncio.to_thread(migrate.create_schema_at_heads, url, offline)
        migrated = await asyncio.to_thread(_describe, url, online)
        scratch = await asyncio.to_thread(_describe, url, offline)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{online}", "{offline}" CASCADE')
    assert migrated["columns"] and migrated["version"]
    for part, rows in migrated.items():
        assert scratch[part] == rows, part


def test_a_failing_revision_leaves_no_scratch_schema(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction: a revision that fails takes the schema and the others with it."""
    url = service_env["POLYSHOP_DATABASE_URL"]
    schema = f"mig_bad_{uuid.uuid4().hex[:8]}"
    good = migrate.upgrade_sql
    monkeypatch.setattr(
        migrate,
        "upgrade_sql",
        lambda s, revision="heads": good(s, revision).replace("COMMIT;", "SELECT 1/0;\nCOMMIT;"),
    )
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate.create_schema_at_heads(url, schema)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
        assert row.fetchone() == (0,)
