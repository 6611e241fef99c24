"""Jobs on RabbitMQ: the `jobs` outbox consumer (publishes to the broker), the e-mail
record of the notifications service, memberships and their renewal reminders.

Revision ID: 0301_jobs
Revises: 0001_core

The reminder of a renewal lives here, not in the broker: a consumer that holds a message
unacked for more than 30 minutes is cut off by RabbitMQ, and the delayed-message plugin
does not ship. The worker sweeps due reminders into the outbox (FOR UPDATE SKIP LOCKED).
"""

from alembic import op

revision = "0301_jobs"
down_revision = "0001_core"
branch_labels = None
depends_on = None

UPGRADE = """
INSERT INTO outbox_consumers (name) VALUES ('jobs') ON CONFLICT DO NOTHING;

CREATE TABLE memberships (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id   bigint NOT NULL REFERENCES customers (id),
    plan          text NOT NULL,
    price_minor   bigint NOT NULL CHECK (price_minor >= 0),
    currency      char(3) NOT NULL,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    started_at    timestamptz NOT NULL,
    renews_at     timestamptz NOT NULL,
    cancelled_at  timestamptz,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- One active membership per customer and plan (a second one is a 409).
CREATE UNIQUE INDEX memberships_one_active ON memberships (customer_id, plan)
    WHERE status = 'active';
CREATE INDEX memberships_renewal_due ON memberships (renews_at) WHERE status = 'active';

-- One row per renewal date a reminder was planned for; at most one is scheduled.
CREATE TABLE membership_reminders (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    membership_id  bigint NOT NULL REFERENCES memberships (id) ON DELETE CASCADE,
    renews_at      timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'scheduled'
                   CHECK (status IN ('scheduled', 'enqueued', 'dropped')),
    enqueued_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX membership_reminders_one_scheduled ON membership_reminders (membership_id)
    WHERE status = 'scheduled';
CREATE INDEX membership_reminders_due ON membership_reminders (due_at)
    WHERE status = 'scheduled';

-- The notifications service's record: one row per event, written after the SMTP
-- server accepted the message (or refused the address), before the broker ack.
CREATE TABLE notification_emails (
    event_id     bigint PRIMARY KEY,
    event_type   text NOT NULL,
    recipient    text NOT NULL,
    message_id   text NOT NULL,
    status       text NOT NULL CHECK (status IN ('sent', 'failed')),
    error        text,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE notification_emails, membership_reminders, memberships;
DELETE FROM outbox_consumers WHERE name = 'jobs';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
