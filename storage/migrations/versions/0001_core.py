"""Core data model: catalog, customers, API keys, orders, idempotency, outbox.

Revision ID: 0001_core
Revises:
"""

from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE products (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku          text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    description  text NOT NULL DEFAULT '',
    brand        text NOT NULL DEFAULT '',
    category     text NOT NULL DEFAULT '',            -- a path: 'Furniture/Chairs/Office Chairs'
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    currency     char(3) NOT NULL DEFAULT 'USD',
    stock        integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'draft', 'archived')),
    rating       numeric(2, 1) CHECK (rating BETWEEN 0 AND 5),
    version      bigint NOT NULL DEFAULT 1,            -- bumped by every change; ETag and event guard
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz                           -- soft delete: order lines keep their product
);
CREATE UNIQUE INDEX products_sku_live ON products (sku) WHERE deleted_at IS NULL;
CREATE INDEX products_category ON products (category text_pattern_ops, id) WHERE deleted_at IS NULL;
CREATE INDEX products_brand ON products (brand, id) WHERE deleted_at IS NULL;
CREATE INDEX products_updated_at ON products (updated_at);

CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    name        text NOT NULL,
    country     char(2),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_hash     bytea NOT NULL UNIQUE,                -- HMAC-SHA256(pepper, key); the key itself is never stored
    prefix       text NOT NULL,                        -- first characters, to recognise a key in logs
    role         text NOT NULL CHECK (role IN ('admin', 'customer', 'warehouse')),
    customer_id  bigint REFERENCES customers (id),
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK ((role = 'customer') = (customer_id IS NOT NULL))
);

CREATE TABLE orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    currency     char(3) NOT NULL,
    total_minor  bigint NOT NULL CHECK (total_minor >= 0),
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_history ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
CREATE INDEX orders_updated_at ON orders (updated_at);

CREATE TABLE order_lines (
    order_id          bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no           integer NOT NULL,
    product_id        bigint NOT NULL REFERENCES products (id),
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_minor  bigint NOT NULL CHECK (unit_price_minor >= 0),  -- captured at order time
    currency          char(3) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_product ON order_lines (product_id);

-- Stripe-style idempotency: one row per (caller, key); the first response is replayed.
CREATE TABLE idempotency_keys (
    principal        text NOT NULL,                    -- e.g. 'customer:42'
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     bytea NOT NULL,
    state            text NOT NULL DEFAULT 'started' CHECK (state IN ('started', 'completed')),
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (principal, key)
);

-- Transactional outbox: written in the same transaction as the change it describes.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate     text NOT NULL,                       -- 'product' | 'order' | ...
    aggregate_id  bigint NOT NULL,
    event_type    text NOT NULL,                       -- 'product.upserted', 'product.deleted', ...
    version       bigint NOT NULL,                     -- the row version after the change
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_created ON outbox (created_at);

-- Every consumer (cache invalidation, search index, ...) gets its own copy of each event,
-- so a consumer whose store is down does not hold back the others.
CREATE TABLE outbox_consumers (name text PRIMARY KEY);
INSERT INTO outbox_consumers (name) VALUES ('cache'), ('search');

CREATE TABLE outbox_pending (
    consumer      text NOT NULL REFERENCES outbox_consumers (name) ON DELETE CASCADE,
    event_id      bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX outbox_pending_due ON outbox_pending (consumer, available_at, event_id);

CREATE TABLE outbox_dead_letters (
    consumer     text NOT NULL,
    event_id     bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempts     integer NOT NULL,
    last_error   text,
    failed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE FUNCTION outbox_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (consumer, event_id)
    SELECT name, NEW.id FROM outbox_consumers;
    -- Delivered at commit; the payload names the schema so tests sharing a database
    -- can tell their own wake-ups apart.
    PERFORM pg_notify('polyshop_outbox', current_schema());
    RETURN NEW;
END $$;
CREATE TRIGGER outbox_fan_out AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_fan_out();
"""

DOWNGRADE = """
DROP TABLE outbox_dead_letters, outbox_pending, outbox_consumers, outbox,
    idempotency_keys, order_lines, orders, api_keys, customers, products CASCADE;
DROP FUNCTION outbox_fan_out();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
