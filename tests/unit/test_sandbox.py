"""The SQL sandbox on a real DuckDB file (no services): statement checks, runtime escapes,
the timeout and the row cap; and the output formats."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from analytics import formats
from analytics.duck import AnalyticsStore, NoSnapshot, SandboxLimits
from analytics.sandbox import (
    AccessDenied,
    QueryFailed,
    QueryTimeout,
    SandboxError,
    StatementRejected,
    check_statement,
    run_query,
)

REFUSED_STATEMENTS = [
    "COPY (SELECT 1) TO '/tmp/x.csv'",
    "COPY t FROM '/etc/passwd'",
    "EXPORT DATABASE '/tmp/dump'",
    "ATTACH '/tmp/other.duckdb' AS other",
    "DETACH main",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL postgres",
    "SET enable_external_access = true",
    "RESET memory_limit",
    "PRAGMA enable_profiling",
    "PRAGMA database_list",
    "CALL pragma_version()",
    "CREATE TABLE x (a int)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')",
    "DROP TABLE t",
    "ALTER TABLE t ADD COLUMN b int",
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 2",
    "DELETE FROM t",
    "TRUNCATE t",
    "CHECKPOINT",
    "VACUUM",
    "USE other",
    "BEGIN",
    "EXPLAIN ANALYZE SELECT 1",
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP TABLE t",
    "",
    "SELEC 1",
    "DESCRIBE t",
    "SUMMARIZE t",
    "SHOW TABLES",
]

RUNTIME_ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/hostname')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'data.csv'",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_csv('http://example.com/x.csv')",
    "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
    "SELECT getenv('HOME')",
    "SELECT * FROM postgres_scan('host=127.0.0.1', 'public', 'customers')",
    "SELECT * FROM postgres_query('pg', 'SELECT 1')",
    "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
    "SELECT * FROM query('SET threads = 64')",
    "SELECT * FROM query('ATTACH ''/tmp/y.duckdb''')",
    "SELECT * FROM query_table('/etc/passwd')",
    "SELECT * FROM duckdb_secrets()",
    "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
    "SELECT * FROM t WHERE a IN (SELECT * FROM read_csv('/etc/passwd'))",
]


@pytest.fixture
def store(tmp_path: Path) -> AnalyticsStore:
    path = tmp_path / "snap.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS a, 'x' || range AS b FROM range(5000)")
    (tmp_path / "data.csv").write_text("secret\n42\n")
    return AnalyticsStore(path, SandboxLimits("256MB", 1))


@pytest.mark.parametrize("sql", REFUSED_STATEMENTS)
def test_only_one_select_statement_passes(sql: str) -> None:
    with pytest.raises(StatementRejected):
        check_statement(sql)


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "FROM t", "  select 1;  "],
)
def test_selects_pass_the_statement_check(sql: str) -> None:
    check_statement(sql)


@pytest.mark.parametrize("sql", REFUSED_STATEMENTS + RUNTIME_ESCAPES)
def test_escapes_are_refused_at_run_time(store: AnalyticsStore, sql: str) -> None:
    with pytest.raises(SandboxError) as caught:
        run_query(store, sql, timeout_s=5, max_rows=10)
    assert isinstance(caught.value, StatementRejected | AccessDenied | QueryFailed)


def test_the_copy_stays_unchanged(store: AnalyticsStore) -> None:
    result = run_query(store, "SELECT count(*) AS n FROM t", timeout_s=5, max_rows=10)
    assert result.table.to_pylist() == [{"n": 5000}]


def test_parameters_are_positional(store: AnalyticsStore) -> None:
    result = run_query(
        store, "SELECT b FROM t WHERE a = ? OR a = $2 ORDER BY a", [3, 4], timeout_s=5, max_rows=9
    )
    assert result.table.column("b").to_pylist() == ["x3", "x4"]


def test_row_cap_sets_truncated(store: AnalyticsStore) -> None:
    capped = run_query(store, "SELECT a FROM t ORDER BY a", timeout_s=5, max_rows=2500)
    assert capped.truncated and capped.table.num_rows == 2500
    whole = run_query(store, "SELECT a FROM t", timeout_s=5, max_rows=5000)
    assert not whole.truncated and whole.table.num_rows == 5000


def test_the_timeout_interrupts_a_heavy_query(store: AnalyticsStore) -> None:
    with pytest.raises(QueryTimeout):
        run_query(
            store,
            "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b",
            timeout_s=0.3,
            max_rows=10,
        )


def test_no_snapshot_yet(tmp_path: Path) -> None:
    with pytest.raises(NoSnapshot):
        AnalyticsStore(tmp_path / "none.duckdb").connect_readonly()


def test_publish_swaps_the_link_atomically(tmp_path: Path) -> None:
    store = AnalyticsStore(tmp_path / "a.duckdb")
    store.snapshot_dir.mkdir()
    for n in (1, 2):
        with duckdb.connect(str(store.snapshot_dir / f"snapshot-{n}.duckdb")) as con:
            con.execute(f"CREATE TABLE v AS SELECT {n} AS n")
    store.publish(store.snapshot_dir / "snapshot-1.duckdb")
    old = store.connect_readonly()
    store.publish(store.snapshot_dir / "snapshot-2.duckdb")
    assert store.collect_garbage(grace_s=0) == [store.snapshot_dir / "snapshot-1.duckdb"]
    with old, store.connect_readonly() as new:
        # an open reader keeps its snapshot even after it was collected
        assert old.execute("SELECT n FROM v").fetchone() == (1,)
        assert new.execute("SELECT n FROM v").fetchone() == (2,)


TABLE = pa.table({"n": [1, 2, 3], "price": pa.array([1.5, None, 3.25]), "s": ["a", "b", "c"]})


def _joined(chunks: object) -> bytes:
    return b"".join(chunks)  # type: ignore[arg-type]


def test_formats_round_trip() -> None:
    body = json.loads(_joined(formats.chunks(TABLE, formats.JSON, True)))
    assert body == {
        "columns": ["n", "price", "s"],
        "rows": [[1, 1.5, "a"], [2, None, "b"], [3, 3.25, "c"]],
        "truncated": True,
    }
    assert pacsv.read_csv(io.BytesIO(_joined(formats.chunks(TABLE, formats.CSV, False)))).equals(
        TABLE
    )
    assert pq.read_table(io.BytesIO(_joined(formats.chunks(TABLE, formats.PARQUET, False)))).equals(
        TABLE
    )
    assert (
        pa.ipc.open_stream(_joined(formats.chunks(TABLE, formats.ARROW, False)))
        .read_all()
        .equals(TABLE)
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, formats.JSON),
        ("*/*", formats.JSON),
        ("text/csv", formats.CSV),
        ("application/vnd.apache.parquet", formats.PARQUET),
        ("application/vnd.apache.arrow.stream;q=1, */*;q=0.1", formats.ARROW),
        ("image/png", None),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str | None) -> None:
    assert formats.negotiate(accept) == expected


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("SELECT * FROM duckdb_secrets()", True),
        ("SELECT * FROM Which_Secret('s3://x', 's3')", True),
        ("SELECT * FROM postgres_query('db', 'SELECT 1')", True),
        ("SELECT * FROM \"postgres_scan\"('host=x', 'public', 't')", True),
        ("SELECT (SELECT 1 FROM query('SELECT 1')) AS x", True),
        ("SELECT * FROM ducklake_expire_snapshots('lake')", True),
        ("SELECT * FROM __ducklake_metadata_lake.public.api_keys", True),
        ("WITH x AS (SELECT * FROM __ducklake_metadata_lake.s.t) SELECT * FROM x", True),
        ("SELECT * FROM ducklake_snapshots('lake')", False),
        ("SELECT count(*) FROM t AT (VERSION => 3)", False),
        ("SELECT pg_typeof(1), upper('postgres_query')", False),
    ],
)
def test_refused_functions_and_catalog_tables(sql: str, refused: bool) -> None:
    from analytics.sandbox import check_references

    if refused:
        with pytest.raises(AccessDenied):
            check_references(sql)
    else:
        check_references(sql)
