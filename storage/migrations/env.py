"""Alembic environment: the URL and target schema come from `storage.migrate`.

Online (`storage.migrate.upgrade`): the revisions run in the schema, created if missing.
Offline (`storage.migrate.upgrade_sql`): the same revisions as SQL text in ONE
transaction, for a schema that whoever runs the text creates and puts first on the
search_path (the revisions' tables are unqualified; only the version table names the
schema)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

config = context.config
url: str = config.attributes["url"]
schema: str = config.attributes["schema"]


def run_offline() -> None:
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},  # a % in the SQL stays a % (not %%)
        version_table_schema=schema,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(
        url,
        poolclass=pool.NullPool,
        connect_args={
            "options": f"-c search_path={schema},public",
            "application_name": "polyshop-migrate",
        },
    )
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            version_table_schema=schema,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
