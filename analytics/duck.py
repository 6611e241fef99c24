"""The DuckDB analytical copy: factory and health probe.

The copy is a DuckDB file written only by the ETL job; readers open it read-only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb


class AnalyticsStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def connect_readonly(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.path), read_only=True)

    def _ping(self) -> None:
        if self.path.exists():
            with self.connect_readonly() as con:
                con.execute("SELECT 1").fetchall()
        else:
            # No ETL run yet: the engine itself must still work.
            with duckdb.connect(":memory:") as con:
                con.execute("SELECT 1").fetchall()

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    def close(self) -> None:
        """Connections are per query; nothing is held open."""


def create_analytics_store(path: Path) -> AnalyticsStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    return AnalyticsStore(path)
