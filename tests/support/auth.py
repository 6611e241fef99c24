"""Create API keys for tests, through the same code the CLI uses."""

from __future__ import annotations

import uuid

from app.stores import Stores
from storage import api_keys
from storage.api_keys import Role


async def bearer(stores: Stores, role: Role, customer_id: int | None = None) -> dict[str, str]:
    """Headers carrying a fresh key of `role`; a customer key gets a new customer."""
    async with stores.pg.connection() as conn:
        if role == "customer" and customer_id is None:
            cur = await conn.execute(
                "INSERT INTO customers (email, name) VALUES (%s, %s) RETURNING id",
                (f"{uuid.uuid4().hex[:12]}@example.test", "Test Customer"),
            )
            row = await cur.fetchone()
            assert row is not None
            customer_id = row["id"]
        key = await api_keys.create_key(
            conn,
            pepper=stores.settings.api_key_pepper.get_secret_value(),
            role=role,
            customer_id=customer_id,
        )
    return {"Authorization": f"Bearer {key}"}
