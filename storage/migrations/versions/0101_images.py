"""Product images: metadata rows and pending direct uploads.

Revision ID: 0101_images
Revises: 0001_core
"""

from alembic import op

revision = "0101_images"
down_revision = "0001_core"
branch_labels = None
depends_on = None

UPGRADE = """
-- One row per image of a product. The blobs live in MinIO under content-addressed keys;
-- a row is written only after its blobs are stored, and deleted before they are.
CREATE TABLE product_images (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id   bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),   -- of the stored original
    object_key   text NOT NULL,                                      -- images/sha256/<hex>.<ext>
    format       text NOT NULL CHECK (format IN ('jpeg', 'png', 'webp')),
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    bytes        bigint NOT NULL CHECK (bytes > 0),
    position     integer NOT NULL DEFAULT 0,                         -- lowest = primary image
    alt_text     text NOT NULL DEFAULT '' CHECK (length(alt_text) <= 1000),
    renditions   jsonb NOT NULL DEFAULT '[]'::jsonb,                 -- [{key, width, height, bytes}]
    renditions_pending boolean NOT NULL DEFAULT false,               -- the worker makes them
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- The same image twice on one product is one row (a retried upload is idempotent).
CREATE UNIQUE INDEX product_images_product_sha ON product_images (product_id, sha256);
CREATE INDEX product_images_order ON product_images (product_id, position, id);
-- GC and delete ask "does any row still use this content?"
CREATE INDEX product_images_sha ON product_images (sha256);
CREATE INDEX product_images_pending ON product_images (id) WHERE renditions_pending;

-- Direct uploads handed out as presigned PUT URLs, until completed or expired.
CREATE TABLE product_image_uploads (
    id           uuid PRIMARY KEY,
    product_id   bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    object_key   text NOT NULL UNIQUE,                               -- incoming/<id>
    s3_upload_id text,                                               -- set: multipart upload
    alt_text     text NOT NULL DEFAULT '' CHECK (length(alt_text) <= 1000),
    position     integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX product_image_uploads_expiry ON product_image_uploads (expires_at);
"""

DOWNGRADE = """
DROP TABLE product_image_uploads, product_images;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
