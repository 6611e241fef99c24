"""Load DuckDB extensions from their pip packages (`duckdb-extension-<name>`), by file path.

Nothing is downloaded: the packages carry the binaries for duckdb's own version. DuckDB
derives the init symbol from the file name, and the postgres package ships
`postgres.duckdb_extension` whose symbol is `postgres_scanner_...`, so each file is linked
under its canonical name in a per-user cache directory before `LOAD`.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import duckdb

# pip package suffix -> the extension's canonical name (which fixes its init symbol)
CANONICAL_NAMES = {"postgres": "postgres_scanner", "tpch": "tpch"}


class ExtensionMissing(RuntimeError):
    pass


def extension_file(name: str) -> Path:
    """The extension binary shipped by `duckdb-extension-<name>` for this duckdb version."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionMissing(f"pip package duckdb-extension-{name} is not installed")
    base = Path(next(iter(spec.submodule_search_locations)))
    found = base / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not found.is_file():
        raise ExtensionMissing(
            f"{found} missing: the package must match duckdb {duckdb.__version__}"
        )
    return found


def _linked(name: str) -> Path:
    canonical = CANONICAL_NAMES.get(name, name)
    cache = Path(tempfile.gettempdir()) / f"polyshop-duckdb-ext-{os.getuid()}" / duckdb.__version__
    cache.mkdir(parents=True, exist_ok=True)
    link = cache / f"{canonical}.duckdb_extension"
    if not link.exists():
        tmp = cache / f".{canonical}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(extension_file(name))
        os.replace(tmp, link)  # atomic: concurrent processes race harmlessly
    return link


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    path = str(_linked(name)).replace("'", "''")
    con.execute(f"LOAD '{path}'")
