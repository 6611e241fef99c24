"""ETL runs requested through the API wait as 'queued' rows until a worker starts them.

Revision ID: 0202_etl_requests
Revises: 0201_etl

`POST /etl/runs` inserts the run with status 'queued' (and NOTIFYs the worker); the
worker's `etl-requests` task takes the ETL lock, marks it 'running' and does the copy.
So DuckDB never runs inside an API replica.
"""

from alembic import op

revision = "0202_etl_requests"
down_revision = "0201_etl"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_status_check;
        ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_status_check
            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'abandoned'));
        -- at most one queued request per schema: a second POST is a 409
        CREATE UNIQUE INDEX etl_runs_one_queued ON etl_runs ((true)) WHERE status = 'queued';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX etl_runs_one_queued;
        DELETE FROM etl_runs WHERE status = 'queued';
        ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_status_check;
        ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_status_check
            CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));
        """
    )
