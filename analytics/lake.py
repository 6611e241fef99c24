"""The analytical copy as a DuckLake: catalog in Postgres, Parquet data on MinIO/S3.

    catalog   Postgres, schema `metadata_schema` (DuckLake's own tables: snapshots, files,
              columns, ...); every ETL run is ONE catalog transaction = one snapshot
    data      s3://bucket/prefix/ (Parquet data files and delete files, never rewritten
              in place; maintenance merges and removes them, etl/maintenance.py)

A reader attaches the lake READ_ONLY. Each query runs in its own DuckDB transaction, and a
DuckLake transaction reads the snapshot that was the latest when it began: one complete
ETL run, in any number of API replicas on any number of hosts, with no file lock (the
catalog is read in a REPEATABLE READ, READ ONLY Postgres transaction).

One reader instance per process holds the extensions and the attached lake (loading the
postgres extension alone costs ~0.12 s of CPU); each query gets its own cursor (a DuckDB
connection with its own transaction, interruptible on its own). The instance is set up
once, then locked down: external access off except the lake's data path
(`allowed_directories`), configuration locked. The sandbox (analytics/sandbox.py) refuses
the functions that would still reach outside (postgres_*, secrets, query()).

Nothing is downloaded at run time: the extensions load from their pip packages
(analytics/extensions.py).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

import duckdb
from psycopg.conninfo import conninfo_to_dict

from analytics.duck import NoSnapshot, SandboxLimits, StoreUnavailable, data_age_s, read_meta
from analytics.extensions import load_extension

LAKE = "lake"  # the attached lake's name in reader instances
EXTENSIONS = ("postgres", "httpfs", "ducklake")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class LakeConfig:
    """Where the lake lives. `catalog_url` is a libpq URL or conninfo of the Postgres
    holding the catalog; the S3 fields describe the MinIO/S3 endpoint of the data."""

    catalog_url: str
    metadata_schema: str
    bucket: str
    prefix: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str = field(repr=False)
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    # the writer's: the Postgres role the ETL grants USAGE and SELECT on the catalog
    # schema (the readers' role; None: the readers share the writer's role)
    reader_role: str | None = None

    @property
    def data_path(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}/" if prefix else f"s3://{self.bucket}/"


def _secret_sql(name: str, cfg: LakeConfig) -> list[str]:
    """The S3 secret (scoped to the lake's data path) and the catalog's postgres secret.

    Credentials live in secrets, not in the ATTACH path: `duckdb_databases()` shows the
    path, and the sandbox refuses `duckdb_secrets()` / `which_secret()`.
    """
    pg = conninfo_to_dict(cfg.catalog_url)
    pg_fields = {
        "HOST": pg.get("host"),
        "PORT": pg.get("port"),
        "DATABASE": pg.get("dbname"),
        "USER": pg.get("user"),
        "PASSWORD": pg.get("password"),
    }
    pg_args = ", ".join(f"{k} {_lit(str(v))}" for k, v in pg_fields.items() if v)
    return [
        f"""CREATE OR REPLACE SECRET {name}_s3 (TYPE s3, KEY_ID {_lit(cfg.s3_access_key)},
              SECRET {_lit(cfg.s3_secret_key)}, ENDPOINT {_lit(cfg.s3_endpoint)},
              URL_STYLE 'path', USE_SSL {str(cfg.s3_secure).lower()},
              REGION {_lit(cfg.s3_region)}, SCOPE {_lit(cfg.data_path)})""",
        f"CREATE OR REPLACE SECRET {name}_pg (TYPE postgres, {pg_args})",
    ]


def attach(con: duckdb.DuckDBPyConnection, cfg: LakeConfig, alias: str, read_only: bool) -> None:
    """Create the secrets and attach the lake as `alias` (the extensions are loaded)."""
    for statement in _secret_sql(alias, cfg):
        con.execute(statement)
    options = [
        f"DATA_PATH {_lit(cfg.data_path)}",
        f"METADATA_SCHEMA {_lit(cfg.metadata_schema)}",
        f"METADATA_PARAMETERS MAP {{'SECRET': {_lit(alias + '_pg')}}}",
    ]
    if read_only:
        options.append("READ_ONLY")
    con.execute(f"ATTACH 'ducklake:postgres:' AS {alias} ({', '.join(options)})")


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    for name in EXTENSIONS:
        load_extension(con, name)


def is_unavailable(exc: BaseException) -> bool:
    """A failure of the lake's services (catalog or object store), not of the query."""
    if isinstance(exc, duckdb.IOException | duckdb.HTTPException | duckdb.ConnectionException):
        return True
    # the postgres extension reports a lost catalog connection as a generic error
    if isinstance(exc, duckdb.ConversionException | duckdb.BinderException):
        return False
    text = str(exc)
    return any(
        s in text
        for s in (
            "Unable to connect to Postgres",
            "Failed to execute query",
            "server closed the connection",
            "Could not establish connection",
        )
    )


class LakeStore:
    """Reader side of the lake, with the interface of `AnalyticsStore`."""

    backend = "ducklake"

    def __init__(self, config: LakeConfig, limits: SandboxLimits | None = None) -> None:
        self.config = config
        self.limits = limits or SandboxLimits()
        self._lock = threading.Lock()
        self._instance: duckdb.DuckDBPyConnection | None = None
        self._has_snapshot = False
        self._meta_cache: tuple[int, dict[str, Any] | None] | None = None

    # -- the shared, locked-down reader instance ------------------------------------

    def _open(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(
            ":memory:",
            config={
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
                "allow_community_extensions": False,
                "allow_persistent_secrets": False,
                "memory_limit": self.limits.memory_limit,
                "threads": self.limits.threads,
            },
        )
        try:
            load_extensions(con)
            attach(con, self.config, LAKE, read_only=True)
            # from here on: no files, no network, except the lake's own data files
            con.execute(f"SET allowed_directories = [{_lit(self.config.data_path)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return con

    def _shared(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._instance is None:
                try:
                    self._instance = self._open()
                except duckdb.Error as exc:
                    if "does not exist" in str(exc):
                        raise NoSnapshot("no analytical snapshot yet: run the ETL first") from exc
                    raise StoreUnavailable(f"the lake cannot be reached: {exc}") from exc
            return self._instance

    def discard(self) -> None:
        """Drop the reader instance (after a failure of the catalog or the object store),
        so the next query attaches afresh."""
        with self._lock:
            instance, self._instance = self._instance, None
        if instance is not None:
            with contextlib.suppress(duckdb.Error):
                instance.close()

    def connect_readonly(self) -> duckdb.DuckDBPyConnection:
        """A sandboxed cursor on the lake; its first query fixes its snapshot."""
        shared = self._shared()
        with self._lock:  # one cursor at a time off the shared connection
            cursor = shared.cursor()
        try:
            cursor.execute(f"USE {LAKE}")
            if not self._has_snapshot:
                found = cursor.execute(
                    "SELECT count(*) FROM duckdb_tables() "
                    f"WHERE database_name = {_lit(LAKE)} AND table_name = '_etl_meta'"
                ).fetchone()
                if not found or not found[0]:
                    raise NoSnapshot("no analytical snapshot yet: run the ETL first")
                self._has_snapshot = True
        except duckdb.Error as exc:
            cursor.close()
            self.discard()
            raise StoreUnavailable(f"the lake cannot be reached: {exc}") from exc
        except BaseException:
            cursor.close()
            raise
        return cursor

    # -- what the rest of the app asks of an analytics store ------------------------

    def snapshot_meta(self) -> dict[str, Any] | None:
        """The `_etl_meta` row of the latest snapshot (cached per snapshot id)."""
        try:
            with self.connect_readonly() as con:
                row = con.execute(
                    f"SELECT id FROM ducklake_current_snapshot({_lit(LAKE)}) t(id)"
                ).fetchone()
                snapshot_id = int(row[0]) if row else -1
                cached = self._meta_cache
                if cached is not None and cached[0] == snapshot_id:
                    return cached[1]
                meta = read_meta(con)
        except (NoSnapshot, StoreUnavailable, duckdb.Error):
            return None
        self._meta_cache = (snapshot_id, meta)
        return meta

    def data_age_s(self) -> float:
        return data_age_s(self.snapshot_meta())

    def _ping(self) -> None:
        try:
            with self.connect_readonly() as con:
                con.execute("SELECT count(*) FROM _etl_meta").fetchall()
        except NoSnapshot:
            return  # no ETL run yet: the catalog answered
        except duckdb.Error as exc:
            self.discard()
            raise StoreUnavailable(f"the lake cannot be read: {exc}") from exc

    async def ping(self) -> None:
        import asyncio

        await asyncio.to_thread(self._ping)

    def close(self) -> None:
        self.discard()
