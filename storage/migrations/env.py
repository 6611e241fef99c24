"""Alembic environment: the URL and target schema come from `storage.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

config = context.config
url: str = config.attributes["url"]
schema: str = config.attributes["schema"]

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
