"""The README's configuration reference is generated from Settings and must match it."""

from __future__ import annotations

from pathlib import Path

from app.settings_doc import BEGIN, END, settings_table

README = Path(__file__).parents[2] / "README.md"


def test_readme_configuration_table_matches_settings() -> None:
    text = README.read_text()
    embedded = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert embedded == settings_table(), (
        "README configuration table is stale: run `uv run python -m app.settings_doc --write`"
    )
