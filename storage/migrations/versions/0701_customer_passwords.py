"""Customer sign-in with credentials: an argon2id password hash per customer (NULL: the
customer has no password and signs in with an API key only).

Revision ID: 0701_customer_passwords
Revises: 0001_core
"""

from alembic import op

revision = "0701_customer_passwords"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers ADD COLUMN password_hash text")
    # sign-in looks the e-mail up case-insensitively
    op.execute("CREATE INDEX customers_email_lower ON customers (lower(email))")


def downgrade() -> None:
    op.execute("DROP INDEX customers_email_lower")
    op.execute("ALTER TABLE customers DROP COLUMN password_hash")
