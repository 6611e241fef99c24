"""The DuckDB analytical copy: immutable snapshot files behind an atomically swapped link.

Layout, for `path = .../polyshop.duckdb`:

    polyshop.duckdb                    symlink -> polyshop.duckdb.snapshots/snapshot-00000042.duckdb
    polyshop.duckdb.snapshots/         one file per published ETL run (never written again)

The ETL writes the next version into a new file and publishes it with `os.replace` of the
symlink (atomic on POSIX). A reader resolves the link once and opens that file read-only,
so each query sees exactly one complete refresh, in any number of API processes, and the
writer never holds a lock a reader needs. Old snapshots are removed after a grace period;
a reader that still has one open keeps reading it (the inode lives until it is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

SNAPSHOT_PREFIX = "snapshot-"
SNAPSHOT_SUFFIX = ".duckdb"


@dataclass(frozen=True)
class SandboxLimits:
    memory_limit: str = "512MB"
    threads: int = 2


class NoSnapshot(LookupError):
    """No ETL run has published an analytical copy yet."""


class StoreUnavailable(RuntimeError):
    """The analytical copy cannot be read now (its catalog or object store is down)."""


class AnalyticsStore:
    backend = "file"

    def __init__(self, path: Path, limits: SandboxLimits | None = None) -> None:
        self.path = path
        self.limits = limits or SandboxLimits()
        self._meta_cache: tuple[Path, dict[str, Any] | None] | None = None

    @property
    def snapshot_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".snapshots")

    def current_snapshot(self) -> Path:
        """The file the link names now (a plain file at `path` is accepted as is)."""
        try:
            return Path(os.path.realpath(self.path, strict=True))
        except OSError as exc:
            raise NoSnapshot("no analytical snapshot yet: run the ETL first") from exc

    def reader_config(self) -> dict[str, Any]:
        """The sandbox: no files, no network, no extensions, settings locked."""
        return {
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_community_extensions": False,
            "memory_limit": self.limits.memory_limit,
            "threads": self.limits.threads,
            "lock_configuration": True,
        }

    def connect_readonly(self) -> duckdb.DuckDBPyConnection:
        """A sandboxed read-only connection to the snapshot published right now."""
        return duckdb.connect(
            str(self.current_snapshot()), read_only=True, config=self.reader_config()
        )

    def publish(self, snapshot: Path) -> None:
        """Point the link at `snapshot` (a finished file inside `snapshot_dir`), atomically."""
        tmp_link = self.path.with_name(f".{self.path.name}.{os.getpid()}.link")
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(os.path.relpath(snapshot, self.path.parent))
        os.replace(tmp_link, self.path)
        _fsync_dir(self.path.parent)

    def collect_garbage(self, grace_s: float, keep: Path | None = None) -> list[Path]:
        """Remove snapshots older than `grace_s` that are not published (nor `keep`)."""
        if not self.snapshot_dir.is_dir():
            return []
        try:
            current: Path | None = self.current_snapshot()
        except NoSnapshot:
            current = None
        removed = []
        now = time.time()
        for f in self.snapshot_dir.iterdir():
            if f in (current, keep) or not f.name.startswith(SNAPSHOT_PREFIX):
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - f.stat().st_mtime >= grace_s:
                    f.unlink()
                    removed.append(f)
        return removed

    def snapshot_meta(self) -> dict[str, Any] | None:
        """What the ETL recorded in the published snapshot (run id, extracted_at epoch)."""
        try:
            current = self.current_snapshot()
        except NoSnapshot:
            return None
        cached = self._meta_cache
        if cached is not None and cached[0] == current:
            return cached[1]
        meta: dict[str, Any] | None = None
        with contextlib.suppress(duckdb.Error), self.connect_readonly() as con:
            meta = read_meta(con)
        self._meta_cache = (current, meta)
        return meta

    def data_age_s(self) -> float:
        """Seconds since the published data was extracted (NaN before the first run)."""
        return data_age_s(self.snapshot_meta())

    def _ping(self) -> None:
        try:
            con = self.connect_readonly()
        except NoSnapshot:
            # No ETL run yet: the engine itself must still work.
            con = duckdb.connect(":memory:")
        with con:
            con.execute("SELECT 1").fetchall()

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    def close(self) -> None:
        """Connections are per query; nothing is held open."""


def read_meta(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The `_etl_meta` row the ETL committed with the data `con` reads (both backends)."""
    cur = con.execute("SELECT * FROM _etl_meta")
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description or ()], row, strict=True))


def data_age_s(meta: dict[str, Any] | None) -> float:
    """Seconds since the data `meta` describes was extracted (NaN before the first run)."""
    if not meta or meta.get("extracted_at") is None:
        return float("nan")
    return max(0.0, time.time() - float(meta["extracted_at"]))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_analytics_store(path: Path, limits: SandboxLimits | None = None) -> AnalyticsStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    return AnalyticsStore(path, limits)
