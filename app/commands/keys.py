"""`polyshop keys create|list|revoke`: API keys are printed once and stored only as a hash."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import psycopg
import typer
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table

from app.settings import Settings, get_settings
from storage import api_keys, customers
from storage.postgres import connect_kwargs

MIN_PREFIX = 8  # "psk_" and four more: never a wildcard over every key

keys = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True)


async def _connect(settings: Settings) -> psycopg.AsyncConnection[dict[str, Any]]:
    return await psycopg.AsyncConnection.connect(
        settings.database_url,
        row_factory=dict_row,
        **connect_kwargs(
            schema=settings.database_schema,
            application_name="polyshop-cli",
            statement_timeout_ms=settings.database_statement_timeout_ms,
        ),
    )


@keys.command("create")
def create(
    role: Annotated[str, typer.Option(help="admin, customer or warehouse")],
    customer_id: Annotated[
        int | None, typer.Option(help="customer keys: an existing customer's id")
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="customer keys: this customer's email (made if new)")
    ] = None,
    name: Annotated[str, typer.Option(help="what the key is for; also a new customer's name")] = "",
) -> None:
    """Create a key and print it once.

    A customer key without --customer-id or --email gets a new customer."""
    if role not in api_keys.ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(api_keys.ROLES)}", param_hint="--role")
    if role != "customer" and (customer_id is not None or email is not None):
        raise typer.BadParameter("only customer keys belong to a customer", param_hint="--role")
    if customer_id is not None and email is not None:
        raise typer.BadParameter("give --customer-id or --email, not both")
    key, owner = asyncio.run(_create(get_settings(), role, customer_id, email, name))
    typer.echo(key)
    who = f" for customer {owner}" if owner is not None else ""
    typer.echo(f"created a {role} key{who}; it is shown only this once", err=True)


async def _create(
    settings: Settings, role: str, customer_id: int | None, email: str | None, name: str
) -> tuple[str, int | None]:
    async with await _connect(settings) as conn:
        if role == "customer":
            if customer_id is not None:
                if await customers.get(conn, customer_id) is None:
                    raise typer.BadParameter(
                        f"no customer {customer_id}", param_hint="--customer-id"
                    )
            else:
                address = email or f"customer-{uuid.uuid4().hex[:12]}@polyshop.invalid"
                found = await customers.by_email(conn, address)
                if found is None:
                    found = await customers.create(conn, email=address, name=name or address)
                customer_id = found.id
        key = await api_keys.create_key(
            conn,
            pepper=settings.api_key_pepper.get_secret_value(),
            role=role,  # type: ignore[arg-type]  # checked against ROLES above
            customer_id=customer_id,
            name=name,
        )
    return key, customer_id


@keys.command("list")
def list_keys() -> None:
    """List every key: prefix, role, customer, created, revoked (never the key)."""
    rows = asyncio.run(_list(get_settings()))
    table = Table("prefix", "role", "customer", "name", "created", "revoked")
    for r in rows:
        table.add_row(
            r["prefix"],
            r["role"],
            str(r["customer_id"] or ""),
            r["name"],
            r["created_at"].isoformat(timespec="seconds"),
            r["revoked_at"].isoformat(timespec="seconds") if r["revoked_at"] else "",
        )
    Console(width=160).print(table)


async def _list(settings: Settings) -> list[dict[str, Any]]:
    async with await _connect(settings) as conn:
        cur = await conn.execute(
            "SELECT prefix, role, customer_id, name, created_at, revoked_at"
            " FROM api_keys ORDER BY id"
        )
        return await cur.fetchall()


@keys.command("revoke")
def revoke(
    prefix: Annotated[str, typer.Argument(help="the key's prefix, as `keys list` shows")],
) -> None:
    """Revoke the key with this prefix; it stops working at once."""
    if len(prefix) < MIN_PREFIX:
        raise typer.BadParameter(f"give at least {MIN_PREFIX} characters", param_hint="PREFIX")
    revoked = asyncio.run(_revoke(get_settings(), prefix))
    if revoked == 0:
        typer.echo(f"no active key with prefix {prefix}", err=True)
        raise typer.Exit(1)
    if revoked > 1:
        typer.echo(f"{revoked} keys share the prefix {prefix}; give more characters", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {prefix}")


async def _revoke(settings: Settings, prefix: str) -> int:
    async with await _connect(settings) as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM api_keys WHERE prefix LIKE %s AND revoked_at IS NULL",
            (_like_prefix(prefix),),
        )
        row = await cur.fetchone()
        n = int(row["n"]) if row else 0
        if n == 1:
            await conn.execute(
                "UPDATE api_keys SET revoked_at = now()"
                " WHERE prefix LIKE %s AND revoked_at IS NULL",
                (_like_prefix(prefix),),
            )
        return n


def _like_prefix(prefix: str) -> str:
    """A stored prefix (10 characters) starting with `prefix`, LIKE wildcards escaped."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
