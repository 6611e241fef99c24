"""The SQL sandbox: one read-only SELECT against the published snapshot, with limits.

Layers, each enough on its own for most escapes:
1. the statement is parsed by DuckDB itself and must be exactly one SELECT (a WITH ...
   SELECT is a SELECT); COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, DDL, DML and
   multiple statements are refused before anything runs;
2. the connection is read-only, with external access disabled (no files, no network, no
   `read_csv`, `glob`, `'file.csv'` in FROM), extension autoloading off and the
   configuration locked (SET is refused even inside `query(...)`);
3. memory and thread limits, a timer that interrupts the query, and a row cap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from analytics.duck import AnalyticsStore

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


def _too_long(timeout_s: float) -> str:
    return f"the query ran longer than {timeout_s:g} s and was stopped"


def run_query(
    store: AnalyticsStore,
    sql: str,
    params: list[Any] | None = None,
    *,
    timeout_s: float,
    max_rows: int,
) -> QueryResult:
    """Run one sandboxed SELECT (blocking: call it from a worker thread)."""
    check_statement(sql)
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
        if "interrupt" in message.lower():
            raise QueryTimeout(
                f"the query ran longer than {timeout_s:g} s and was stopped"
            ) from exc
        raise QueryFailed(message) from exc
    finally:
        timer.cancel()
        con.close()
