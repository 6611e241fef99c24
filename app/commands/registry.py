"""CLI commands of the feature areas. Add a group (`polyshop keys ...`) or a command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

COMMAND_GROUPS: dict[str, typer.Typer] = {}
COMMANDS: list[Callable[..., Any]] = []
