"""The SQL sandbox: one read-only SELECT against the published snapshot, with limits.

Layers, each enough on its own for most escapes:
1. the statement is parsed by DuckDB itself and must be exactly one SELECT (a WITH ...
   SELECT is a SELECT); COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, DDL, DML and
   multiple statements are refused before anything runs;
2. the connection is read-only, with external access disabled (no files, no network, no
   `read_csv`, `glob`, `'file.csv'` in FROM), extension autoloading off and the
   configuration locked (SET is refused even inside `query(...)`);
3. memory and thread limits, a timer that interrupts the query, and a row cap.

On the lake (analytics/lake.py) the reader instance must keep the postgres, httpfs and
ducklake extensions loaded to read its catalog and its files, and those bring functions
that reach outside whatever the configuration says (`postgres_query` runs SQL in any
Postgres, `duckdb_secrets()` shows the S3 key id). So a 4th layer, on both backends: the
statement's syntax tree (`json_serialize_sql`, DuckDB's own serialisation) is walked and
every call of a refused function (`REFUSED_FUNCTIONS`, `REFUSED_PREFIXES`) and every
table of the lake's catalog database (`__ducklake_metadata_*`) is refused before the
query runs. `query()` / `query_table()` are refused too: they would run SQL that this
check never saw.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from analytics.duck import AnalyticsStore, StoreUnavailable
from analytics.lake import LakeStore, is_unavailable

ALLOWED_TYPES = {duckdb.StatementType.SELECT}


class SandboxError(Exception):
    """A query the sandbox refuses or that failed; `reason` is a short machine word."""

    reason = "invalid_query"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StatementRejected(SandboxError):
    reason = "statement_not_allowed"


class AccessDenied(SandboxError):
    reason = "access_denied"
    status = 403


class QueryTimeout(SandboxError):
    reason = "timeout"
    status = 422


class QueryFailed(SandboxError):
    reason = "query_failed"


@dataclass
class QueryResult:
    table: pa.Table
    truncated: bool


def check_statement(sql: str) -> None:
    """Exactly one SELECT statement, judged by DuckDB's own parser."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise StatementRejected(f"the SQL does not parse: {exc}") from exc
    if len(statements) != 1:
        raise StatementRejected(f"exactly one statement is allowed, got {len(statements)}")
    kind = statements[0].type
    if kind not in ALLOWED_TYPES:
        name = getattr(kind, "name", str(kind))
        raise StatementRejected(f"only SELECT (or WITH ... SELECT) is allowed, got {name}")
    # PRAGMA x is rewritten by the parser into a SELECT on pragma_x(); refuse it by intent
    if sql.lstrip().lower().startswith(("pragma", "describe", "summarize", "show")):
        raise StatementRejected("only SELECT (or WITH ... SELECT) is allowed")


# Functions no user query may call (lower case). Prefixes cover every function of the
# postgres extension and the writing/maintenance functions of ducklake.
REFUSED_FUNCTIONS = frozenset(
    {
        "duckdb_secrets",
        "which_secret",
        "query",
        "query_table",
        "getenv",
        "read_text",
        "read_blob",
        "glob",
        "pg_clear_cache",
        "read_postgres_binary",
    }
)
REFUSED_PREFIXES = ("postgres_", "sqlite_", "mysql_", "http_")
# the read-only ducklake functions a user may call (snapshots, time travel, changes)
ALLOWED_DUCKLAKE = frozenset(
    {
        "ducklake_snapshots",
        "ducklake_current_snapshot",
        "ducklake_last_committed_snapshot",
        "ducklake_table_info",
        "ducklake_table_changes",
        "ducklake_table_insertions",
        "ducklake_table_deletions",
    }
)
CATALOG_PREFIX = "__ducklake_metadata"

_parser = duckdb.connect(":memory:")
_parser_lock = threading.Lock()


def _syntax_tree(sql: str) -> dict[str, Any]:
    with _parser_lock:
        cursor = _parser.cursor()
    try:
        row = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    finally:
        cursor.close()
    tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    return tree


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def refused_function(name: str) -> bool:
    name = name.lower()
    if name in REFUSED_FUNCTIONS or name.startswith(REFUSED_PREFIXES):
        return True
    return name.startswith("ducklake_") and name not in ALLOWED_DUCKLAKE


def check_references(sql: str) -> None:
    """No refused function and no table of the lake's catalog, anywhere in the tree."""
    tree = _syntax_tree(sql)
    if tree.get("error"):
        raise StatementRejected(f"the SQL cannot be checked: {tree.get('error_message', '')}")
    for node in _nodes(tree.get("statements", [])):
        name = node.get("function_name")
        if isinstance(name, str) and refused_function(name):
            raise AccessDenied(f"the function {name} is not available in analytics queries")
        if node.get("type") == "BASE_TABLE":
            names = (str(node.get("catalog_name", "")), str(node.get("schema_name", "")))
            if any(n.lower().startswith(CATALOG_PREFIX) for n in names):
                raise AccessDenied("the lake's catalog is not available in analytics queries")


def _too_long(timeout_s: float) -> str:
    return f"the query ran longer than {timeout_s:g} s and was stopped"


def run_query(
    store: AnalyticsStore | LakeStore,
    sql: str,
    params: list[Any] | None = None,
    *,
    timeout_s: float,
    max_rows: int,
) -> QueryResult:
    """Run one sandboxed SELECT (blocking: call it from a worker thread)."""
    check_statement(sql)
    check_references(sql)
    con = store.connect_readonly()
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        reader = con.execute(sql, params or []).to_arrow_reader(batch_size=2048)
        batches: list[pa.RecordBatch] = []
        n = 0
        truncated = False
        for batch in reader:
            if n + batch.num_rows > max_rows:
                batches.append(batch.slice(0, max_rows - n))
                truncated = True
                break
            batches.append(batch)
            n += batch.num_rows
        return QueryResult(pa.Table.from_batches(batches, schema=reader.schema), truncated)
    except duckdb.InterruptException as exc:
        raise QueryTimeout(_too_long(timeout_s)) from exc
    except duckdb.PermissionException as exc:
        raise AccessDenied(str(exc).splitlines()[0]) from exc
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        if isinstance(store, LakeStore) and is_unavailable(exc):
            store.discard()
            raise StoreUnavailable(f"the lake cannot be read: {message}") from exc
        if "interrupt" in message.lower():
            raise QueryTimeout(
                f"the query ran longer than {timeout_s:g} s and was stopped"
            ) from exc
        raise QueryFailed(message) from exc
    finally:
        timer.cancel()
        con.close()
