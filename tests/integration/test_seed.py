"""`polyshop seed`: consistent sample data, loaded once with --if-empty."""

from __future__ import annotations

import asyncio
from typing import Any

import typer
from typer.testing import CliRunner, Result

from app.commands.seed import seed
from app.settings import Settings, get_settings
from app.stores import Stores
from kit import passwords


async def run_seed(settings: Settings, *args: str) -> Result:
    app = typer.Typer()
    app.command()(seed)
    env = {
        "POLYSHOP_DATABASE_URL": settings.database_url,
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
    }

    def invoke() -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(app, list(args), env=env)
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(invoke)


async def scalar(stores: Stores, sql: str) -> Any:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(sql)
        row = await cur.fetchone()
    assert row is not None
    return next(iter(row.values()))


async def test_seed_makes_consistent_data_once(settings: Settings, stores: Stores) -> None:
    # --images 0: this checks the COPY load alone (pictures bump versions, emit events)
    args = (
        "--products",
        "500",
        "--customers",
        "50",
        "--orders",
        "300",
        "--if-empty",
        "--images",
        "0",
    )
    result = await run_seed(settings, *args)
    assert result.exit_code == 0, result.output
    assert "seeded 500 products" in result.stdout

    assert await scalar(stores, "SELECT count(*) FROM products") == 500
    assert await scalar(stores, "SELECT count(*) FROM customers") == 50
    # the first 5 customers sign in with the documented demo password; the seed says who
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT email, password_hash FROM customers WHERE password_hash IS NOT NULL"
        )
        demo = await cur.fetchall()
    assert len(demo) == 5
    assert len({d["password_hash"] for d in demo}) == 5  # each its own salt
    for row in demo:
        assert row["email"] in result.stdout
        assert await passwords.verify(row["password_hash"], passwords.DEMO_PASSWORD)
    assert await scalar(stores, "SELECT count(*) FROM orders") == 300
    # every total is the sum of its lines, every order has lines
    assert (
        await scalar(
            stores,
            """SELECT count(*) FROM orders o WHERE o.total_minor IS DISTINCT FROM
               (SELECT sum(quantity * unit_price_minor) FROM order_lines l
                 WHERE l.order_id = o.id)""",
        )
        == 0
    )
    # lines carry the product's sku, name and price as of seeding
    assert (
        await scalar(
            stores,
            """SELECT count(*) FROM order_lines l JOIN products p ON p.id = l.product_id
                WHERE (l.sku, l.name, l.unit_price_minor) <> (p.sku, p.name, p.price_minor)""",
        )
        == 0
    )
    # a three-level category tree, version 1, no outbox events
    assert (
        await scalar(
            stores, "SELECT count(*) FROM products WHERE category !~ '^[^/]+/[^/]+/[^/]+$'"
        )
        == 0
    )
    assert (
        await scalar(stores, "SELECT count(DISTINCT split_part(category, '/', 1)) FROM products")
        == 8
    )
    assert await scalar(stores, "SELECT count(DISTINCT brand) FROM products") > 20
    assert await scalar(stores, "SELECT count(*) FROM products WHERE version <> 1") == 0
    assert await scalar(stores, "SELECT count(*) FROM products WHERE attributes ? 'color'") == 500
    assert await scalar(stores, "SELECT count(*) FROM outbox") == 0
    # a year of history, mostly shipped
    assert (
        await scalar(
            stores,
            "SELECT count(*) FROM orders"
            " WHERE created_at < now() - interval '366 days' OR created_at > now()",
        )
        == 0
    )
    shipped = await scalar(stores, "SELECT count(*) FROM orders WHERE status = 'shipped'")
    assert isinstance(shipped, int) and shipped > 150

    again = await run_seed(settings, *args)
    assert again.exit_code == 0, again.output
    assert "nothing seeded" in again.stdout
    assert await scalar(stores, "SELECT count(*) FROM products") == 500
    assert await scalar(stores, "SELECT count(*) FROM orders") == 300


async def test_seeded_history_is_served_by_the_api(settings: Settings, stores: Stores) -> None:
    import httpx
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from tests.support.auth import bearer

    result = await run_seed(settings, "--products", "50", "--customers", "5", "--orders", "40")
    assert result.exit_code == 0, result.output
    assert "gave 50 products a picture" in result.stdout
    headers = await bearer(stores, "warehouse")
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = await client.get("/orders", params={"limit": 100}, headers=headers)
    assert page.status_code == 200
    created = [o["created_at"] for o in page.json()["items"]]
    assert len(created) == 40
    assert created == sorted(created, reverse=True)
