"""`polyshop search ...` commands, run through typer against the test's schema."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from app.commands import search as search_commands
from app.settings import Settings
from search.engine import create_search_engine
from search.index_admin import alias_name
from tests.support.search import ON_EACH_ENGINE

pytestmark = ON_EACH_ENGINE


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(search_commands, "get_settings", lambda: settings)
    return settings


def _seed(settings: Settings, n: int) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{settings.database_schema}"')
        for i in range(n):
            conn.execute(
                "INSERT INTO products (sku, name, price_minor) VALUES (%s, %s, %s)",
                (f"CLI-{i}", f"Cli thing {i}", 100 + i),
            )


def test_reindex_reconcile_and_dead_letter_commands(cli_settings: Settings) -> None:
    _seed(cli_settings, 12)
    runner = CliRunner()

    result = runner.invoke(search_commands.search_cli, ["reindex", "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    assert "12 loaded" in result.output

    result = runner.invoke(search_commands.search_cli, ["reconcile"])
    assert result.exit_code == 0, result.output
    assert "checked 12: 0 missing, 0 stale, 0 extra" in result.output

    result = runner.invoke(search_commands.search_cli, ["dead-letters", "list"])
    assert result.exit_code == 0 and "no dead letters" in result.output
    result = runner.invoke(search_commands.search_cli, ["dead-letters", "replay"])
    assert result.exit_code == 0 and "queued 0 event(s)" in result.output


async def test_reindex_command_swaps_the_alias(cli_settings: Settings) -> None:
    import asyncio

    await asyncio.to_thread(_seed, cli_settings, 3)
    runner = CliRunner()
    for _ in range(2):
        result = await asyncio.to_thread(runner.invoke, search_commands.search_cli, ["reindex"])
        assert result.exit_code == 0, result.output
    engine = create_search_engine(cli_settings.search_engine, cli_settings.search_url)
    try:
        alias = alias_name(cli_settings.search_index_prefix)
        targets = await engine.alias_targets(alias)
        assert len(targets) == 1
        assert await engine.indices_matching(f"{alias}-*") == targets  # old one removed
    finally:
        await engine.close()
