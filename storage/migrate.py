"""Schema migrations with Alembic, applied into one Postgres schema.

Each feature area adds its own revisions under `storage/migrations/versions/`; areas
that do not depend on each other may branch, so we always upgrade to `heads`.
"""

from __future__ import annotations

import io
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlalchemy_url(url: str) -> str:
    """Alembic runs on SQLAlchemy; point it at the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def alembic_config(url: str, schema: str, output: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = sqlalchemy_url(url)
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(url: str, schema: str = "public", revision: str = "heads") -> None:
    command.upgrade(alembic_config(url, schema), revision)


def downgrade(url: str, schema: str, revision: str) -> None:
    command.downgrade(alembic_config(url, schema), revision)


def upgrade_sql(schema: str, revision: str = "heads") -> str:
    """The revisions up to `revision` as SQL text in one transaction (Alembic's offline
    mode): the version table qualified with `schema`, every other name unqualified (the
    search_path's)."""
    output = io.StringIO()
    # offline: the URL only names the dialect
    command.upgrade(alembic_config("postgresql://", schema, output), revision, sql=True)
    return output.getvalue()


def create_schema_at_heads(url: str, schema: str) -> None:
    """A NEW schema with every revision applied, as `upgrade` would leave it, in one
    transaction and one round trip: the offline SQL of the revisions on a connection
    whose search_path is the schema. For scratch runs (tests, benchmarks), which create
    a schema each; the shop's schema is migrated with `upgrade`. A test checks that both
    leave the same schema (tests/integration/test_migrations.py)."""
    script = upgrade_sql(schema)
    # one simple-protocol message: the statements before the script's BEGIN join its
    # transaction, so the schema exists with every revision or not at all
    with psycopg.connect(url, autocommit=True, application_name="polyshop-migrate") as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}", public;\n{script}')
