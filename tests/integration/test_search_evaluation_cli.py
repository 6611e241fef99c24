"""`polyshop search evaluate` against the real engine (the scoring run on each engine), on
a small catalog made here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.commands import search as search_commands
from app.settings import Settings
from app.stores import Stores
from tests.support.search import ON_EACH_ENGINE, consumer_for, drain, insert_product

PRODUCTS = [
    # sku, name, category
    ("TS-1", "Classic Cotton T-Shirt", "Clothing/Men/T-Shirts"),
    ("TS-2", "Slim Tshirt", "Clothing/Men/T-Shirts"),
    ("MN-1", 'Office Monitor 27"', "Electronics/Monitors"),
    ("MN-2", "Office Monitor 24 in.", "Electronics/Monitors"),
    ("GB-1", "Grill Brush for Gas Grills", "Outdoor/Grills/Grill Brushes"),
    ("GG-1", "Gas Grill SD-500", "Outdoor/Grills/Gas Grills"),
]
JUDGMENTS = (
    "query,sku,grade\n"
    "tshirt,TS-1,3\ntshirt,TS-2,3\n"
    "27 inch monitor,MN-1,3\n27 inch monitor,MN-2,1\n"
    "grill,GG-1,3\ngrill,GB-1,1\n"
    "sd500,GG-1,3\n"
)


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(search_commands, "get_settings", lambda: settings)
    return settings


@ON_EACH_ENGINE
async def test_evaluate_scores_polyshop_beside_the_baseline(
    cli_settings: Settings, stores: Stores, tmp_path: Path
) -> None:
    async with stores.pg.connection() as conn:
        for sku, name, category in PRODUCTS:
            await insert_product(conn, sku=sku, name=name, category=category)
    await drain(stores, consumer_for(stores))
    await stores.search.refresh(f"{cli_settings.search_index_prefix}-products")
    judged = tmp_path / "judgments.csv"
    judged.write_text(JUDGMENTS)

    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, search_commands.search_cli, ["evaluate", str(judged)]
    )
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[0].strip(): line.split() for line in result.output.splitlines()}
    # the compound in all its spellings, and the model number, only polyshop finds
    assert lines["tshirt"][1] == "1.000" and float(lines["tshirt"][2]) < 1
    assert lines["sd500"][1:3] == ["1.000", "0.000"]
    assert "4 queries (relevant: grade >= 2)" in result.output
    assert "0 queries worse than the baseline" in result.output
    # the temporary baseline index is gone
    alias = f"{cli_settings.search_index_prefix}-products"
    assert await stores.search.indices_matching(f"{alias}_baseline_*") == []


def test_malformed_judgments_are_refused_with_the_line(
    cli_settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("query,sku,grade\nchair,A,3\nchair,B,lots\n")
    result = CliRunner().invoke(search_commands.search_cli, ["evaluate", str(bad)])
    assert result.exit_code == 2
    assert "line 3: grade 'lots' is not an integer" in result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(search_commands.search_cli, ["evaluate", str(tmp_path / "no")])
    assert missing.exit_code == 2


def test_engine_down_is_a_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    down = settings.model_copy(update={"search_url": "http://127.0.0.1:9"})
    monkeypatch.setattr(search_commands, "get_settings", lambda: down)
    judged = tmp_path / "j.csv"
    judged.write_text(JUDGMENTS)
    result = CliRunner().invoke(search_commands.search_cli, ["evaluate", str(judged)])
    assert result.exit_code == 3
    assert "is unavailable" in result.output and "Traceback" not in result.output
