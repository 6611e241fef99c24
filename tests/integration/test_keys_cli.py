"""`polyshop keys`: a key is printed once, authenticates, and only its hash is stored."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from typer.testing import CliRunner, Result

from app.commands.keys import keys
from app.settings import Settings, get_settings
from app.stores import Stores
from storage.api_keys import hash_key


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "POLYSHOP_DATABASE_URL": settings.database_url,
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
        "POLYSHOP_API_KEY_PEPPER": settings.api_key_pepper.get_secret_value(),
    }


async def run(env: dict[str, str], *args: str) -> Result:
    """Invoke the command group in a thread (it runs its own event loop), with settings
    read afresh from `env`."""

    def invoke() -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(keys, list(args), env=env)
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(invoke)


def printed_key(result: Result) -> str:
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("psk_")]
    assert len(lines) == 1, result.stdout
    return lines[0]


async def test_created_key_authenticates_and_only_its_hash_is_stored(
    cli_env: dict[str, str], client: httpx.AsyncClient, stores: Stores, settings: Settings
) -> None:
    key = printed_key(await run(cli_env, "create", "--role", "warehouse", "--name", "ops"))

    response = await client.get("/orders", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200

    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT key_hash, prefix, role, name, api_keys::text AS t FROM api_keys"
        )
        rows = await cur.fetchall()
    assert len(rows) == 1
    row = rows[0]
    assert bytes(row["key_hash"]) == hash_key(settings.api_key_pepper.get_secret_value(), key)
    assert (row["prefix"], row["role"], row["name"]) == (key[:10], "warehouse", "ops")
    assert key not in row["t"] and key[10:] not in row["t"]


async def test_customer_keys_get_or_make_their_customer(
    cli_env: dict[str, str], client: httpx.AsyncClient, stores: Stores
) -> None:
    fresh = printed_key(await run(cli_env, "create", "--role", "customer"))
    by_email = printed_key(
        await run(cli_env, "create", "--role", "customer", "--email", "ann@example.test")
    )
    same = printed_key(
        await run(cli_env, "create", "--role", "customer", "--email", "ann@example.test")
    )
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT c.email, count(*) AS n FROM api_keys k JOIN customers c"
            " ON c.id = k.customer_id GROUP BY c.email ORDER BY c.email"
        )
        rows = await cur.fetchall()
    assert [r["n"] for r in rows] == [2, 1]
    assert rows[0]["email"] == "ann@example.test"
    ann_id = await _customer_id(stores, "ann@example.test")
    explicit = printed_key(
        await run(cli_env, "create", "--role", "customer", "--customer-id", str(ann_id))
    )
    for key in (fresh, by_email, same, explicit):
        response = await client.get("/orders", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
    # customers cannot list other customers' orders, admin-only routes refuse them
    assert (
        await client.post(
            "/orders/1/transitions",
            json={"status": "paid"},
            headers={"Authorization": f"Bearer {fresh}"},
        )
    ).status_code == 403


async def _customer_id(stores: Stores, email: str) -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT id FROM customers WHERE email = %s", (email,))
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def test_bad_arguments_are_refused(cli_env: dict[str, str], stores: Stores) -> None:
    assert (await run(cli_env, "create", "--role", "root")).exit_code == 2
    assert (
        await run(cli_env, "create", "--role", "customer", "--customer-id", "999")
    ).exit_code == 2
    assert (await run(cli_env, "create", "--role", "admin", "--email", "x@y.z")).exit_code == 2
    assert (await run(cli_env, "create")).exit_code == 2
    async with stores.pg.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM api_keys")
        assert await cur.fetchone() == {"n": 0}


async def test_list_shows_prefixes_and_revoke_stops_the_key(
    cli_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    key = printed_key(await run(cli_env, "create", "--role", "admin"))
    listing = await run(cli_env, "list")
    assert listing.exit_code == 0
    assert key[:10] in listing.stdout and "admin" in listing.stdout
    assert key[10:] not in listing.stdout

    assert (await run(cli_env, "revoke", "psk_")).exit_code == 2  # too short: no wildcards
    assert (await run(cli_env, "revoke", "psk_zzzzzz")).exit_code == 1
    revoked = await run(cli_env, "revoke", key[:10])
    assert revoked.exit_code == 0, revoked.output
    response = await client.get("/orders", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    listed = (await run(cli_env, "list")).stdout
    assert listed.count(key[:10]) == 1
    assert (await run(cli_env, "revoke", key[:10])).exit_code == 1  # already revoked
