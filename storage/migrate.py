"""Schema migrations with Alembic, applied into one Postgres schema.

Each feature area adds its own revisions under `storage/migrations/versions/`; areas
that do not depend on each other may branch, so we always upgrade to `heads`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlalchemy_url(url: str) -> str:
    """Alembic runs on SQLAlchemy; point it at the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def alembic_config(url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = sqlalchemy_url(url)
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(url: str, schema: str = "public", revision: str = "heads") -> None:
    command.upgrade(alembic_config(url, schema), revision)


def downgrade(url: str, schema: str, revision: str) -> None:
    command.downgrade(alembic_config(url, schema), revision)
