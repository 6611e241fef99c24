"""Render the configuration reference (a Markdown table) from `Settings`.

`uv run python -m app.settings_doc` prints it (`--write` updates README.md); the README
embeds it between markers and `tests/unit/test_readme.py` fails when the two drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import SecretStr

from app.settings import Settings

BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"


def _default(value: object) -> str:
    if isinstance(value, SecretStr):
        return "(dev secret; required in production)"
    if isinstance(value, list):  # as the environment must spell it: JSON
        return json.dumps(value, default=str)  # addresses, networks: their text
    return str(value)


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `POLYSHOP_{name.upper()}` | `{_default(default)}` | {meaning} |")
    return "\n".join(rows)


def write_readme(path: Path) -> None:
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{settings_table()}\n{END}{tail}")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme(Path("README.md"))
    else:
        print(settings_table())
