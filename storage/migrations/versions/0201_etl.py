"""ETL bookkeeping: run history, per-table watermarks and a change log for the copy.

Revision ID: 0201_etl
Revises: 0001_core

Change tracking: statement-level AFTER triggers (installed per copied table by the ETL,
see etl/tracking.py) write the key of every inserted, updated or deleted row into
`etl_changes`, stamped with the writing transaction's id (`pg_current_xact_id()`). The
change row commits atomically with the row change, so a reader that knows the oldest
transaction still running when it last looked (`pg_snapshot_xmin`) can never miss a
change committed out of order; a change is re-read next time unless that previous
snapshot already saw its transaction (`pg_visible_in_snapshot`). The source tables
themselves get no extra column.
"""

from alembic import op

revision = "0201_etl"
down_revision = "0001_core"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE etl_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('full', 'incremental', 'backfill')),
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    rows         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- {"table": rows written}
    error        text,
    snapshot     text,                                 -- file name of the published snapshot
    source_xmin  text,                                 -- pg_snapshot taken at the start
    options      jsonb NOT NULL DEFAULT '{}'::jsonb    -- backfill range, table set
);
CREATE INDEX etl_runs_started ON etl_runs (started_at DESC, id DESC);

-- Per copied table: every change by a transaction with id >= last_xmin may be missing
-- from the published snapshot; older ones are all in it.
CREATE TABLE etl_watermarks (
    tbl         text PRIMARY KEY,
    last_xmin   xid8 NOT NULL,
    -- the whole snapshot: changes by transactions it already saw are skipped next time,
    -- so a long transaction elsewhere holding xmin back does not make runs re-read much
    last_snapshot  pg_snapshot NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys of changed rows (insert, update, delete), pruned once a snapshot covers them.
CREATE TABLE etl_changes (
    tbl   text NOT NULL,
    key   jsonb NOT NULL,
    txid  xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX etl_changes_tbl_txid ON etl_changes (tbl, txid);

-- Generic statement-level trigger body: TG_ARGV holds the key column names.
CREATE FUNCTION etl_track_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keyexpr text;
BEGIN
    SELECT 'jsonb_build_object(' || string_agg(format('%L, %I', k, k), ', ') || ')'
      INTO keyexpr FROM unnest(TG_ARGV) AS k;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO %I.etl_changes (tbl, key) SELECT DISTINCT %L, %s FROM etl_new_rows',
                       TG_TABLE_SCHEMA, TG_TABLE_NAME, keyexpr);
    ELSIF TG_OP = 'UPDATE' THEN
        -- an UPDATE may change the key itself: the old key must leave the copy too
        -- (UNION: one change row per key when it did not change)
        EXECUTE format('INSERT INTO %I.etl_changes (tbl, key) '
                       'SELECT %L, k FROM (SELECT %s AS k FROM etl_new_rows '
                       'UNION SELECT %s FROM etl_old_rows) u',
                       TG_TABLE_SCHEMA, TG_TABLE_NAME, keyexpr, keyexpr);
    ELSE
        EXECUTE format('INSERT INTO %I.etl_changes (tbl, key) SELECT DISTINCT %L, %s FROM etl_old_rows',
                       TG_TABLE_SCHEMA, TG_TABLE_NAME, keyexpr);
    END IF;
    RETURN NULL;
END $$;
"""

DOWNGRADE = """
DROP TABLE etl_changes, etl_watermarks, etl_runs;
DROP FUNCTION etl_track_changes() CASCADE;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
