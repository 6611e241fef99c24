"""`polyshop customers set-password`: a customer's password for the web sign-in
(stored as an argon2id hash, kit/passwords.py; open sessions of the old one end)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from app.commands.keys import _connect
from app.settings import Settings, get_settings
from kit import passwords
from storage import customers

customers_cli = typer.Typer(help="Customers: set a web sign-in password.", no_args_is_help=True)


@customers_cli.callback()
def _group() -> None:
    """Customers: set a web sign-in password."""  # a group even with one command


@customers_cli.command("set-password")
def set_password(
    email: Annotated[str, typer.Option(help="the customer's e-mail")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin (scripts)")
    ] = False,
) -> None:
    """Set the password a customer signs in with on the web pages (asked twice, hidden)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if (why := passwords.check_new(password)) is not None:
        raise typer.BadParameter(why, param_hint="password")
    if not asyncio.run(_set(get_settings(), email, password)):
        typer.echo(f"no customer with e-mail {email}", err=True)
        raise typer.Exit(1)
    typer.echo(f"password set for {email}")


async def _set(settings: Settings, email: str, password: str) -> bool:
    stored = passwords.hash_password(password)
    async with await _connect(settings) as conn:
        found = await customers.credentials(conn, email)
        return found is not None and await customers.set_password_hash(conn, found[0], stored)
