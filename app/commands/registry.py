"""CLI commands of the feature areas. Add a group (`polyshop keys ...`) or a command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from app.commands.cache import cache_cli
from app.commands.customers import customers_cli
from app.commands.etl import etl_cli
from app.commands.images import images_cli
from app.commands.jobs import jobs_cli, notifications
from app.commands.keys import keys
from app.commands.restore import after_restore
from app.commands.search import search_cli
from app.commands.seed import seed

COMMAND_GROUPS: dict[str, typer.Typer] = {
    "keys": keys,
    "search": search_cli,
    "images": images_cli,
    "etl": etl_cli,
    "cache": cache_cli,
    "jobs": jobs_cli,
    "customers": customers_cli,
}
COMMANDS: list[Callable[..., Any]] = [seed, notifications, after_restore]
