"""The data generation: one row the restore procedure bumps (`polyshop cache flush`).

Revision ID: 0401_data_generation
Revises: 0001_core

Derived state keyed by it (the product cache's values, version floors and leases) is
never read again once it changes: a restore from a dump brings back an older row, so
the procedure bumps it after the restore (see docs/operations.md, "Restore"). The
cluster's system identifier and timeline (pg_control_*) are part of the generation
too, so a restore into a new cluster or a failover (a promotion starts a new
timeline) change it without any step.
"""

from alembic import op

revision = "0401_data_generation"
down_revision = "0001_core"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE data_generation (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    token       text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO data_generation (token) VALUES (md5(random()::text || clock_timestamp()::text));
"""

DOWNGRADE = "DROP TABLE data_generation;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
