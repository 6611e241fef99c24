"""API keys: a change of a key row (a revocation) is announced on `polyshop_api_keys`.

Revision ID: 0003_api_key_notify
Revises: 0001_core

Every API replica keeps the keys it has seen valid in memory (storage.api_keys.
ApiKeyCache) and drops them all when this notification for its schema arrives.
"""

from alembic import op

revision = "0003_api_key_notify"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('polyshop_api_keys', current_schema());
            RETURN NULL;
        END $$;
        CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE OR TRUNCATE ON api_keys
            FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER api_keys_changed ON api_keys; DROP FUNCTION api_keys_notify();")
