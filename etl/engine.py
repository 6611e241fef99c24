"""The ETL's DuckDB writer: one in-memory engine per process, snapshot files attached to it.

Loading the postgres extension costs ~0.12-0.13 s of CPU per DuckDB instance (measured,
even when the library is already mapped), about a quarter of an incremental run. So a
process keeps one in-memory instance per writer configuration with the extension loaded,
and each run attaches its own snapshot file to it (`snap`, made the default catalog with
`USE`) and Postgres (`pg`), and detaches both at the end. Detaching closes the file;
the runner then fsyncs, renames and publishes it exactly as before.

Runs in one process are serialized by a lock (the attached names are instance-wide).
Runs of one schema never overlap anyway (the Postgres advisory lock); runs of different
schemas in the same process wait for each other instead of running side by side.
If cleaning up after a failed run fails, the engine is thrown away, so no file can stay
attached to it.

A kept engine keeps memory too: its threads' allocation caches and the catalog of every
extension hold 30-70 MiB more than a fresh engine, and that climbs over the first dozens
of runs before it levels off (bench/etl_memory.py; docs/benchmarks.md, "Soak"). A caller
that runs rarely (the worker's schedule: every 15 minutes) gives `max_runs=1`: the engine
is closed after each run and its memory returned, for ~0.12 s of CPU at the next run.
`max_runs=0` keeps it for the life of the process.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb

from analytics.extensions import load_extension
from analytics.lake import LakeConfig, attach, load_extensions

SNAPSHOT = "snap"  # the attached snapshot file (default catalog during a run)
POSTGRES = "pg"  # the attached source database

_lock = threading.Lock()
_engines: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_runs: dict[tuple[int, str], int] = {}  # runs each kept engine has served


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _spill_directory() -> Path:
    return Path(tempfile.gettempdir()) / f"polyshop-etl-spill-{os.getpid()}"


def _engine(threads: int, memory_limit: str) -> duckdb.DuckDBPyConnection:
    key = (threads, memory_limit)
    engine = _engines.get(key)
    if engine is None:
        engine = duckdb.connect(
            ":memory:",
            config={
                "threads": threads,
                "memory_limit": memory_limit,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                # where a sort larger than memory_limit spills (an in-memory engine's
                # default is `.tmp` in the working directory); DuckDB removes its files
                "temp_directory": str(_spill_directory()),
            },
        )
        try:
            # FSST string compression took a large share of a full load's CPU for
            # little gain over dictionary encoding (which the runner, in turn, turns off
            # per column for strings with many distinct values: `_stored_plain`).
            # docs/benchmarks.md, "Where the time went". A SET, not a connect option:
            # DuckDB 1.5 silently ignores it in the connect config.
            engine.execute("SET GLOBAL disabled_compression_methods = 'fsst'")
            # Without the ordered (batch) insert, a full load took ~15-20% less CPU (1M
            # and 4M order lines). It only concerns inserts without ORDER BY: the runner
            # writes every table in key order (`runner._key_order`), which DuckDB keeps.
            engine.execute("SET GLOBAL preserve_insertion_order = false")
            # Any implicit timestamptz <-> timestamp conversion in the writer is UTC (the
            # ETL converts explicitly; this only makes a slip harmless). Not a connect
            # option: the setting belongs to the built-in ICU extension.
            engine.execute("SET GLOBAL TimeZone = 'UTC'")
            load_extension(engine, "postgres")
        except BaseException:
            engine.close()
            raise
        _engines[key] = engine
    return engine


def _lake_engine(threads: int, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """The process's writer engine with the lake's extensions (httpfs, ducklake) too."""
    engine = _engine(threads, memory_limit)
    try:
        load_extensions(engine)  # LOAD of a loaded extension is a no-op
    except BaseException:
        _discard(threads, memory_limit)
        raise
    return engine


def _discard(threads: int, memory_limit: str) -> None:
    _attached.pop((threads, memory_limit), None)
    engine = _engines.pop((threads, memory_limit), None)
    _runs.pop((threads, memory_limit), None)
    if engine is not None:
        with contextlib.suppress(duckdb.Error):
            engine.close()


def _served(threads: int, memory_limit: str, max_runs: int) -> None:
    """Count a finished run; close the engine once it has served `max_runs` (0: never)."""
    key = (threads, memory_limit)
    _runs[key] = _runs.get(key, 0) + 1
    if max_runs and _runs[key] >= max_runs:
        _discard(threads, memory_limit)


# The lake each writer engine has attached as `snap`, kept between runs: attaching it
# (secrets, catalog reads) was 0.7-1.1 s of a 1.6-2.3 s empty run at 1M order lines on
# the loaded machine (docs/benchmarks.md). A DuckLake transaction reads the catalog's
# latest snapshot when it begins, so a kept attachment sees every other writer's commit.
_attached: dict[tuple[int, str], LakeConfig] = {}


def _detach_lake(duck: duckdb.DuckDBPyConnection, key: tuple[int, str]) -> None:
    _attached.pop(key, None)
    duck.execute("USE memory")
    duck.execute(f"DETACH DATABASE IF EXISTS {SNAPSHOT}")


@contextlib.contextmanager
def writer(
    path: Path, database_url: str, threads: int, memory_limit: str, max_runs: int = 0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default catalog is the snapshot file `path`, Postgres as `pg`.

    On exit (success or not) both are detached, which closes the file; a transaction
    still open is rolled back first. The engine is closed after `max_runs` runs (0: kept).
    """
    with _lock:
        duck = _engine(threads, memory_limit).cursor()
        try:
            _detach_lake(duck, (threads, memory_limit))  # a lake a run of this process kept
            duck.execute(f"ATTACH {_lit(str(path))} AS {SNAPSHOT}")
            duck.execute(f"USE {SNAPSHOT}")
            duck.execute(f"ATTACH {_lit(database_url)} AS {POSTGRES} (TYPE postgres, READ_ONLY)")
            yield duck
        finally:
            try:
                with contextlib.suppress(duckdb.Error):
                    duck.execute("ROLLBACK")  # only if the run left one open
                duck.execute("USE memory")
                duck.execute(f"DETACH DATABASE IF EXISTS {POSTGRES}")
                duck.execute(f"DETACH DATABASE IF EXISTS {SNAPSHOT}")
                duck.close()
            except BaseException:
                _discard(threads, memory_limit)
                raise
            _served(threads, memory_limit, max_runs)


@contextlib.contextmanager
def lake_writer(
    lake: LakeConfig, database_url: str, threads: int, memory_limit: str, max_runs: int = 0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default catalog is the DuckLake (as `snap`), Postgres as `pg`.

    The run's DuckDB transaction is one DuckLake commit: Parquet files are written to the
    object store as the run goes, and the catalog (in Postgres) names them only at
    COMMIT, in one Postgres transaction. On exit a transaction still open is rolled back
    and Postgres is detached; the lake stays attached for the process's next run of the
    same lake, unless the run failed (then it is detached too, and the next run attaches
    afresh: a lost catalog connection is never reused).
    """
    key = (threads, memory_limit)
    with _lock:
        duck = _lake_engine(threads, memory_limit).cursor()
        ok = False
        try:
            if _attached.get(key) != lake:
                _detach_lake(duck, key)
                attach(duck, lake, SNAPSHOT, read_only=False)
                _attached[key] = lake
            duck.execute(f"USE {SNAPSHOT}")
            duck.execute(f"ATTACH {_lit(database_url)} AS {POSTGRES} (TYPE postgres, READ_ONLY)")
            yield duck
            ok = True
        finally:
            try:
                with contextlib.suppress(duckdb.Error):
                    duck.execute("ROLLBACK")
                duck.execute("USE memory")
                duck.execute(f"DETACH DATABASE IF EXISTS {POSTGRES}")
                if not ok:
                    _detach_lake(duck, key)
                duck.close()
            except BaseException:
                _discard(threads, memory_limit)
                raise
            _served(threads, memory_limit, max_runs)
