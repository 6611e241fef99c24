"""The analytical copy as a DuckLake (catalog in the test's Postgres schema of its own,
Parquet in the test's bucket): one lake commit per run, the watermark inside it, kill -9
recovery, snapshot-consistent readers in several stores at once, a plain DuckDB process
attaching it read-only, the sandbox on both backends, outages."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import duckdb
import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager

from analytics.duck import NoSnapshot, StoreUnavailable
from analytics.extensions import _linked
from analytics.lake import LakeStore, attach, load_extensions
from analytics.sandbox import (
    AccessDenied,
    QueryTimeout,
    SandboxError,
    StatementRejected,
    run_query,
)
from app.etl_schedule import etl_job
from app.main import create_app
from app.settings import Settings
from app.stores import Stores, lake_config
from tests.integration.test_etl import (
    REPO,
    add_orders,
    assert_parity,
    kill_cli_run_when,
    pg,
    runs,
    seed_shop,
)
from tests.support.auth import bearer
from tests.unit.test_sandbox import REFUSED_STATEMENTS, RUNTIME_ESCAPES


def lake_settings(settings: Settings, **extra: Any) -> Settings:
    return settings.model_copy(update={"analytics_backend": "ducklake", **extra})


def current_snapshot(store: LakeStore) -> int:
    with store.connect_readonly() as con:
        row = con.execute("SELECT id FROM ducklake_current_snapshot('lake') t(id)").fetchone()
    assert row is not None
    return int(row[0])


def lake_files(settings: Settings) -> list[str]:
    from app.stores import create_blob_client

    client = create_blob_client(settings)
    return [
        str(o.object_name)
        for o in client.list_objects(
            settings.lake_bucket, prefix=settings.lake_prefix, recursive=True
        )
    ]


@pytest.fixture
def lake(settings: Settings) -> Settings:
    return lake_settings(settings)


async def test_each_run_is_one_lake_commit_of_the_changed_rows(lake: Settings) -> None:
    seed_shop(lake)
    job = etl_job(lake)
    assert isinstance(job.reader, LakeStore)
    with pytest.raises(NoSnapshot):
        job.reader.connect_readonly()
    first = await asyncio.to_thread(job.run)
    assert first.status == "succeeded", first.error
    assert first.snapshot == f"lake@{current_snapshot(job.reader)}"
    counts = assert_parity(lake)
    assert first.rows == counts
    files_after_first = set(lake_files(lake))

    with pg(lake) as c:
        add_orders(c, 3)
        c.execute("UPDATE products SET name = 'Renamed' WHERE id = 1")
        c.execute("DELETE FROM orders WHERE id = 2")  # and its lines, by cascade
    before = current_snapshot(job.reader)
    second = await asyncio.to_thread(job.run)
    assert second.status == "succeeded", second.error
    assert second.kind == "incremental"
    # only the changed rows travelled: 3 new orders (the deleted one has no row), 6 lines
    assert second.rows == {"customers": 0, "products": 1, "orders": 3, "order_lines": 6}
    after = current_snapshot(job.reader)
    assert after == before + 1  # the whole run is ONE snapshot
    assert_parity(lake)
    # no file of the previous snapshot was rewritten: the run added files next to them
    assert files_after_first <= set(lake_files(lake))
    with job.reader.connect_readonly() as con:
        changes = con.execute(
            "SELECT changes FROM ducklake_snapshots('lake') WHERE snapshot_id = ?", [after]
        ).fetchone()
        meta = con.execute("SELECT run_id, watermark_xmin FROM _etl_meta").fetchone()
        # time travel: the snapshot before the run still answers
        old = con.execute(f"SELECT count(*) FROM orders AT (VERSION => {before})").fetchone()
    assert changes is not None
    assert meta is not None and meta[0] == second.run_id  # the watermark came with the data
    assert old == (counts["orders"],)
    with pg(lake) as c:  # the change log below the committed watermark is pruned
        left = c.execute("SELECT count(*) FROM etl_changes WHERE txid < %s::xid8", (meta[1],))
        assert left.fetchone() == (0,)

    quiet = await asyncio.to_thread(job.run)
    assert sum(quiet.rows.values()) == 0
    full = await asyncio.to_thread(job.run, "full")
    assert full.status == "succeeded", full.error
    assert_parity(lake)


def _cli_env(settings: Settings, pause_s: float, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        POLYSHOP_DATABASE_URL=settings.database_url,
        POLYSHOP_DATABASE_SCHEMA=settings.database_schema,
        POLYSHOP_DUCKDB_PATH=str(settings.duckdb_path),
        POLYSHOP_ETL_TEST_PAUSE_S=str(pause_s),
        POLYSHOP_ENVIRONMENT="test",
        POLYSHOP_ANALYTICS_BACKEND=settings.analytics_backend,
        POLYSHOP_LAKE_METADATA_SCHEMA=settings.lake_metadata_schema,
        POLYSHOP_LAKE_BUCKET=settings.lake_bucket,
        POLYSHOP_LAKE_PREFIX=settings.lake_prefix,
        POLYSHOP_S3_ENDPOINT=settings.s3_endpoint,
        POLYSHOP_S3_ACCESS_KEY=settings.s3_access_key,
        POLYSHOP_S3_SECRET_KEY=settings.s3_secret_key.get_secret_value(),
        **extra,
    )
    return env


async def test_a_lake_run_killed_half_way_is_finished_by_the_next(lake: Settings) -> None:
    seed_shop(lake)
    job = etl_job(lake)
    assert (await asyncio.to_thread(job.run)).status == "succeeded"
    assert isinstance(job.reader, LakeStore)
    published = current_snapshot(job.reader)
    with pg(lake) as c:
        add_orders(c, 4)
        c.execute("DELETE FROM orders WHERE id = 3")
        c.execute("UPDATE products SET price_minor = 4242 WHERE id = 5")

    def loaded_two_tables() -> bool:
        mine = [r for r in runs(lake) if r["id"] > 1]
        return bool(mine and len(mine[0]["rows"] or {}) >= 2)

    await kill_cli_run_when(_cli_env(lake, pause_s=30), loaded_two_tables)
    assert runs(lake)[-1]["status"] == "running"
    # nothing of the killed run is visible: the same snapshot, the old rows
    assert current_snapshot(job.reader) == published
    with job.reader.connect_readonly() as duck:
        assert duck.execute("SELECT count(*) FROM orders WHERE id = 3").fetchone() == (1,)
        assert duck.execute("SELECT price_minor FROM products WHERE id = 5").fetchone() != (4242,)

    result = await asyncio.to_thread(job.run)
    assert result.status == "succeeded", result.error
    assert result.kind == "incremental" and result.rows["order_lines"] < 20  # not a full copy
    assert [r["status"] for r in runs(lake)] == ["succeeded", "abandoned", "succeeded"]
    assert current_snapshot(job.reader) == published + 1
    assert_parity(lake)


async def test_a_lake_run_killed_after_its_commit_is_recorded_by_the_next(
    lake: Settings,
) -> None:
    """kill -9 between the lake commit and recording the run in Postgres: the next run
    finds the run named by the lake's `_etl_meta`, records it as succeeded (its snapshot,
    its rows), and starts from the watermark that commit holds."""
    seed_shop(lake)
    job = etl_job(lake)
    assert (await asyncio.to_thread(job.run)).status == "succeeded"
    assert isinstance(job.reader, LakeStore)
    reader = job.reader
    published = current_snapshot(reader)
    with pg(lake) as c:
        add_orders(c, 3)
        c.execute("UPDATE products SET price_minor = 4242 WHERE id = 5")

    def committed() -> bool:
        return current_snapshot(reader) > published

    env = _cli_env(lake, pause_s=0, POLYSHOP_ETL_TEST_PAUSE_AFTER_COMMIT_S="30")
    await kill_cli_run_when(env, committed)
    killed = runs(lake)[-1]
    assert killed["status"] == "running"  # it died before recording its commit
    with reader.connect_readonly() as duck:
        assert duck.execute("SELECT price_minor FROM products WHERE id = 5").fetchone() == (4242,)
        meta = duck.execute("SELECT run_id, watermark_xmin FROM _etl_meta").fetchone()
    assert meta is not None and meta[0] == killed["id"]

    result = await asyncio.to_thread(job.run)
    assert result.status == "succeeded", result.error
    first, recorded, last = runs(lake)
    assert [first["status"], recorded["status"], last["status"]] == ["succeeded"] * 3
    assert recorded["id"] == killed["id"] and recorded["error"] is None
    assert recorded["snapshot"] == f"lake@{published + 1}"
    assert recorded["rows"]["order_lines"] > 0 and recorded["finished_at"] < last["started_at"]
    # the next run started from the committed watermark: nothing applied twice
    assert sum(result.rows.values()) == 0
    with pg(lake) as c:  # the change log the killed run's commit covers is pruned
        left = c.execute("SELECT count(*) FROM etl_changes WHERE txid < %s::xid8", (meta[1],))
        assert left.fetchone() == (0,)
    assert_parity(lake)


async def test_readers_in_several_stores_see_whole_runs_while_the_etl_commits(
    lake: Settings,
) -> None:
    """Two reader stores (two API replicas: two DuckDB instances) query while slow runs
    commit: every answer is one whole run, never a half-applied one."""
    seed_shop(lake, orders=20)
    await asyncio.to_thread(etl_job(lake).run)
    replicas = [LakeStore(lc) for lc in (lake_config(lake), lake_config(lake)) if lc]
    sql = """SELECT (SELECT count(*) FROM orders) AS orders,
                    (SELECT count(*) FROM orders o WHERE total_minor <>
                       (SELECT coalesce(sum(quantity * unit_price_minor), 0)
                          FROM order_lines l WHERE l.order_id = o.id)) AS inconsistent,
                    (SELECT count(*) FROM fact_order_lines) AS facts,
                    (SELECT count(*) FROM order_lines) AS lines"""
    seen: set[int] = set()
    bad: list[Any] = []
    slow = etl_job(lake.model_copy(update={"etl_test_pause_s": 0.3}))

    def runs_with_changes() -> None:
        for _ in range(2):
            with pg(lake) as c:
                add_orders(c, 10)
            slow.run()

    writer = threading.Thread(target=runs_with_changes)
    writer.start()
    try:
        while writer.is_alive():
            for store in replicas:
                [row] = run_query(store, sql, timeout_s=10, max_rows=10).table.to_pylist()
                orders, inconsistent, facts, lines = row.values()
                if inconsistent or facts != lines or orders not in (20, 30, 40):
                    bad.append((orders, inconsistent, facts, lines))
                seen.add(orders)
    finally:
        writer.join()
    assert bad == []
    assert 20 in seen or 30 in seen  # old snapshots answered while runs were going
    for store in replicas:
        assert run_query(store, "SELECT count(*) AS n FROM orders", timeout_s=5, max_rows=1)
        store.close()
    assert_parity(lake)


def plain_duckdb_script(settings: Settings) -> str:
    """What docs/analytics.md tells an analyst to run: any DuckDB, read-only."""
    exts = "\n".join(f"LOAD '{_linked(n)}';" for n in ("postgres", "httpfs", "ducklake"))
    host, port = settings.s3_endpoint.split(":")
    return textwrap.dedent(
        f"""
        {exts}
        CREATE SECRET (TYPE s3, KEY_ID '{settings.s3_access_key}',
            SECRET '{settings.s3_secret_key.get_secret_value()}', ENDPOINT '{host}:{port}',
            URL_STYLE 'path', USE_SSL false);
        ATTACH 'ducklake:postgres:{settings.database_url}' AS shop
            (METADATA_SCHEMA '{settings.lake_metadata_schema}', READ_ONLY);
        SELECT count(*) FROM shop.orders;
        """
    )


async def test_a_plain_duckdb_process_attaches_the_lake_read_only(lake: Settings) -> None:
    seed_shop(lake, orders=7)
    assert (await asyncio.to_thread(etl_job(lake).run)).status == "succeeded"
    script = plain_duckdb_script(lake)
    code = (
        "import sys, duckdb\n"
        "con = duckdb.connect(config={'autoinstall_known_extensions': False})\n"
        "print(con.execute(sys.stdin.read()).fetchone()[0])\n"
        "try:\n"
        "    con.execute('INSERT INTO shop.customers (id) VALUES (-1)')\n"
        "except duckdb.Error as e:\n"
        "    print('refused', type(e).__name__)\n"
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        input=script,
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    count, refused = done.stdout.split("\n")[:2]
    assert int(count) == 7
    assert refused.startswith("refused")


async def test_the_readers_credentials_cannot_write_the_lake_nor_its_catalog(
    lake: Settings,
) -> None:
    """API replicas read with the readers' S3 key and Postgres role (made by the dev
    stack; the ETL grants the role SELECT on the catalog). Outside the SQL sandbox (a
    plain DuckDB attached read-write with them, psycopg, the S3 client) MinIO and
    Postgres themselves refuse every write, and anything beyond the lake."""
    from minio.error import S3Error

    from app.stores import create_analytics, create_blob_client, lake_reader_config
    from storage.blobs import create_minio

    seed_shop(lake, orders=30)
    assert (await asyncio.to_thread(etl_job(lake).run)).status == "succeeded"
    writer, reader = lake_config(lake), lake_reader_config(lake)
    assert writer is not None and reader is not None
    assert lake.lake_reader_database_user and lake.lake_reader_s3_access_key, (
        "the dev stack's services.env names the readers' credentials"
    )
    assert reader.s3_access_key != writer.s3_access_key and reader.reader_role is None
    api_store = create_analytics(lake)  # what the API replicas open
    assert isinstance(api_store, LakeStore) and api_store.config == reader
    try:
        answer = await asyncio.to_thread(
            run_query, api_store, "SELECT count(*) FROM orders", timeout_s=30, max_rows=10
        )
        assert answer.table.to_pylist() == [{"count_star()": 30}]
    finally:
        api_store.close()

    # a plain DuckDB with the readers' credentials, attached read-write, no sandbox
    writer_store = LakeStore(writer)
    files_before, snapshot_before = set(lake_files(lake)), current_snapshot(writer_store)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        load_extensions(con)
        attach(con, reader, "rw", read_only=False)
        assert con.execute("SELECT count(*) FROM rw.orders").fetchone() == (30,)
        data_file = con.execute(
            "SELECT data_file FROM ducklake_list_files('rw', 'order_lines') LIMIT 1"
        ).fetchone()
        assert data_file is not None
        for write in (
            "INSERT INTO rw.customers (id, email) VALUES (-1, 'x@y.test')",  # Parquet to S3
            "CREATE VIEW rw.v AS SELECT 1 AS one",  # the catalog alone
            "CREATE TABLE rw.t AS SELECT 1 AS one",
        ):
            with pytest.raises(duckdb.Error, match="Failed to commit"):
                con.execute(write)
    finally:
        con.close()
    # refused by the services, not merely rolled back after writing: no new object, no
    # new snapshot
    assert set(lake_files(lake)) == files_before
    assert current_snapshot(writer_store) == snapshot_before
    writer_store.close()

    # the catalog, straight through Postgres as the readers' role
    schema = lake.lake_metadata_schema
    catalog = psycopg.conninfo.make_conninfo(lake.database_url, user=lake.lake_reader_database_user)
    with psycopg.connect(catalog, autocommit=True) as c:
        assert c.execute(f'SELECT count(*) FROM "{schema}".ducklake_snapshot').fetchone()
        for statement in (
            f'DELETE FROM "{schema}".ducklake_snapshot',
            f"UPDATE \"{schema}\".ducklake_data_file SET path = 'x'",
            f'CREATE TABLE "{schema}".planted (x int)',
            f'DROP TABLE "{schema}".ducklake_snapshot',
            f'SELECT * FROM "{lake.database_schema}".customers',  # the shop's own data
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(statement)

    # the data, straight through S3 with the readers' key
    s3 = create_minio(
        lake.s3_endpoint,
        access_key=reader.s3_access_key,
        secret_key=reader.s3_secret_key,
        secure=lake.s3_secure,
        region=lake.s3_region,
    )
    key = str(data_file[0]).split(f"{lake.lake_bucket}/", 1)[1]
    assert s3.get_object(lake.lake_bucket, key).read(4) == b"PAR1"
    outside = f"outside-{os.getpid()}.txt"  # the bucket's other objects (images)
    create_blob_client(lake).put_object(lake.lake_bucket, outside, io.BytesIO(b"x"), 1)
    refusals: list[Callable[[], object]] = [
        lambda: s3.put_object(lake.lake_bucket, f"{lake.lake_prefix}planted", io.BytesIO(b"x"), 1),
        lambda: s3.remove_object(lake.lake_bucket, key),
        lambda: s3.get_object(lake.lake_bucket, outside),
    ]
    for refused in refusals:
        with pytest.raises(S3Error) as denied:
            refused()
        assert denied.value.code == "AccessDenied"
    assert s3.stat_object(lake.lake_bucket, key).size  # still there


# -- the sandbox, on both backends ----------------------------------------------------

LAKE_ESCAPES = [
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM which_secret('s3://x/y', 's3')",
    "SELECT * FROM postgres_query('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT * FROM postgres_execute('__ducklake_metadata_lake', 'DROP SCHEMA public')",
    "SELECT * FROM postgres_scan('host=127.0.0.1 dbname=polyshop', 'public', 'api_keys')",
    "SELECT * FROM POSTGRES_QUERY('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT * FROM \"postgres_query\"('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT * FROM system.main.postgres_query('__ducklake_metadata_lake', 'SELECT 1')",
    "SELECT * FROM __ducklake_metadata_lake.public.api_keys",
    "SELECT * FROM __ducklake_metadata_lake.ducklake_snapshot",
    "SELECT * FROM ducklake_expire_snapshots('lake', older_than => now())",
    "SELECT * FROM ducklake_merge_adjacent_files('lake')",
    "SELECT * FROM ducklake_cleanup_old_files('lake', cleanup_all => true)",
    "SELECT * FROM ducklake_set_option('lake', 'data_path', 's3://elsewhere/')",
    "SELECT * FROM ducklake_add_data_files('lake', 'orders', 's3://x/y.parquet')",
    "SELECT * FROM query('SELECT * FROM duckdb_secrets()')",
    "SELECT * FROM read_parquet('s3://polyshop-images/any.parquet')",
    "SELECT * FROM read_csv('s3://another-bucket/x.csv')",
    "SELECT * FROM 's3://another-bucket/x.parquet'",
    "SELECT * FROM glob('s3://**')",
    "SELECT (SELECT count(*) FROM duckdb_secrets()) AS n",
]


@pytest.fixture(params=["file", "ducklake"])
async def backend(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    chosen = settings.model_copy(update={"analytics_backend": request.param})
    seed_shop(chosen, customers=3, products=4, orders=5)
    result = await asyncio.to_thread(etl_job(chosen).run)
    assert result.status == "succeeded", result.error
    return chosen


async def test_the_sandbox_refuses_the_same_on_both_backends(backend: Settings) -> None:
    store = etl_job(backend).reader
    wrong = {}
    for sql in REFUSED_STATEMENTS + RUNTIME_ESCAPES + LAKE_ESCAPES:
        try:
            run_query(store, sql, timeout_s=5, max_rows=10)
        except SandboxError:
            continue
        wrong[sql] = "answered"
    assert wrong == {}
    with pytest.raises(AccessDenied):
        run_query(store, "SELECT * FROM duckdb_secrets()", timeout_s=5, max_rows=10)
    with pytest.raises(StatementRejected):
        run_query(store, "DELETE FROM orders", timeout_s=5, max_rows=10)
    # what a user may read about the engine shows no credential
    secret = backend.s3_secret_key.get_secret_value()
    for probe in (
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM duckdb_databases()",
        "SELECT * FROM duckdb_extensions()",
        "SELECT current_setting('s3_secret_access_key') AS s",
        "SELECT * FROM duckdb_views()",
    ):
        try:
            text = str(run_query(store, probe, timeout_s=5, max_rows=10_000).table.to_pylist())
        except SandboxError:
            continue  # refused is fine too
        assert secret not in text, probe
        assert "key_id=" not in text, probe
    assert run_query(store, "SELECT count(*) AS n FROM orders", timeout_s=5, max_rows=1).table[
        "n"
    ].to_pylist() == [5]
    # the timeout interrupts this query's cursor only; the store answers afterwards
    with pytest.raises(QueryTimeout):
        run_query(
            store,
            "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b",
            timeout_s=0.3,
            max_rows=10,
        )
    assert run_query(store, "SELECT 42 AS n", timeout_s=5, max_rows=1).table["n"].to_pylist() == [
        42
    ]
    if isinstance(store, LakeStore):
        store.close()


async def test_the_lake_reader_cannot_write_even_past_the_sandbox(lake: Settings) -> None:
    """Second wall: the reader's own connection (no statement check) cannot write the
    lake, its catalog, or files elsewhere."""
    seed_shop(lake)
    await asyncio.to_thread(etl_job(lake).run)
    store = LakeStore(lake_config(lake))  # type: ignore[arg-type]
    before = current_snapshot(store)
    attempts = [
        "INSERT INTO orders (id) VALUES (-1)",
        "DELETE FROM orders",
        "CREATE TABLE x AS SELECT 1",
        "CALL ducklake_expire_snapshots('lake', older_than => now())",
        "SELECT * FROM postgres_execute('__ducklake_metadata_lake', 'CREATE TABLE x (a int)')",
        "COPY (SELECT 1) TO 's3://another-bucket/evil.parquet'",
        "COPY (SELECT 1) TO '/tmp/evil.parquet'",
        "SELECT * FROM read_parquet('s3://polyshop-images/any.parquet')",
        "SET enable_external_access = true",
        "ATTACH 'ducklake:postgres:' AS rw (DATA_PATH 's3://x/')",
    ]
    allowed = []
    for sql in attempts:
        with store.connect_readonly() as con:
            try:
                con.execute(sql)
            except duckdb.Error:
                continue
            allowed.append(sql)
    assert allowed == []
    assert current_snapshot(store) == before
    store.close()


# -- outages --------------------------------------------------------------------------


@pytest.fixture
async def lake_client(lake: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Stores]]:
    app = create_app(lake)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c, app.state.stores


async def test_the_api_reads_the_lake_and_answers_503_when_it_is_down(
    lake: Settings, lake_client: tuple[httpx.AsyncClient, Stores]
) -> None:
    client, stores = lake_client
    admin = await bearer(stores, "admin")
    body = {"sql": "SELECT count(*) FROM orders"}
    empty = await client.post("/analytics/query", headers=admin, json=body)
    assert empty.status_code == 503 and "Retry-After" in empty.headers
    seed_shop(lake, orders=60)  # enough rows to be Parquet files, not inlined in the catalog
    assert (await asyncio.to_thread(etl_job(lake).run)).status == "succeeded"
    ok = await client.post("/analytics/query", headers=admin, json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["rows"] == [[60]]
    report = await client.get("/analytics/reports/orders_by_status", headers=admin)
    assert report.status_code == 200, report.text

    # the catalog unreachable (nothing listens there) and the object store unreachable
    for broken in (
        lake.model_copy(update={"database_url": "postgresql://polyshop@127.0.0.1:9/polyshop"}),
        lake.model_copy(update={"s3_endpoint": "127.0.0.1:9"}),
    ):
        store = LakeStore(lake_config(broken))  # type: ignore[arg-type]
        stores.analytics = store
        down = await client.post(
            "/analytics/query", headers=admin, json={"sql": "SELECT sum(quantity) FROM order_lines"}
        )
        assert down.status_code == 503, down.text
        assert "Retry-After" in down.headers
        assert down.headers["content-type"].startswith("application/problem+json")
        store.close()


async def test_a_lake_run_with_the_object_store_down_fails_and_is_redone(
    lake: Settings,
) -> None:
    seed_shop(lake)
    job = etl_job(lake)
    assert (await asyncio.to_thread(job.run)).status == "succeeded"
    assert isinstance(job.reader, LakeStore)
    before = current_snapshot(job.reader)
    with pg(lake) as c:
        add_orders(c, 2)
    dead = etl_job(lake.model_copy(update={"s3_endpoint": "127.0.0.1:9"}))
    failed = await asyncio.to_thread(dead.run)
    assert failed.status == "failed" and failed.error
    assert current_snapshot(job.reader) == before
    dead_catalog = etl_job(
        lake.model_copy(update={"database_url": "postgresql://polyshop@127.0.0.1:9/polyshop"})
    )
    with pytest.raises(Exception):  # noqa: B017 - psycopg cannot even take the lock
        await asyncio.to_thread(dead_catalog.run)
    redone = await asyncio.to_thread(job.run)
    assert redone.status == "succeeded", redone.error
    assert redone.rows["orders"] == 2
    assert current_snapshot(job.reader) == before + 1
    assert [r["status"] for r in runs(lake)] == ["succeeded", "failed", "succeeded"]
    assert_parity(lake)
    with pytest.raises(StoreUnavailable):
        LakeStore(
            lake_config(lake.model_copy(update={"database_url": "postgresql://x@127.0.0.1:9/x"}))  # type: ignore[arg-type]
        ).connect_readonly()


# -- maintenance ----------------------------------------------------------------------


async def test_maintenance_expires_merges_and_deletes_under_the_lock(lake: Settings) -> None:
    import io

    from app.etl_schedule import run_lake_maintenance
    from app.stores import create_blob_client
    from etl.maintenance import MaintenanceLocked, lake_status

    seed_shop(lake, orders=30)
    job = etl_job(lake)
    assert (await asyncio.to_thread(job.run)).status == "succeeded"
    for n in range(3):
        with pg(lake) as c:
            add_orders(c, 20)
            c.execute("UPDATE products SET price_minor = price_minor + 1 WHERE id = %s", (n + 1,))
        assert (await asyncio.to_thread(job.run)).status == "succeeded"
    # what a run killed before its commit leaves behind: a file no snapshot names
    stray = f"{lake.lake_prefix}main/orders/ducklake-stray.parquet"
    create_blob_client(lake).put_object(lake.lake_bucket, stray, io.BytesIO(b"x"), 1)
    config = lake_config(lake)
    assert config is not None
    before = lake_status(lake.database_url, config)
    assert before["snapshots"] >= 5 and before["data_files"] > 4

    handle = await asyncio.to_thread(job.begin)  # an ETL run holds the lock
    try:
        with pytest.raises(MaintenanceLocked):
            await asyncio.to_thread(run_lake_maintenance, lake)
    finally:
        await asyncio.to_thread(job.execute, handle)

    now = lake.model_copy(update={"lake_snapshot_retention_h": 1e-9, "etl_snapshot_grace_s": 0})
    result = await asyncio.to_thread(run_lake_maintenance, now)
    assert result.expired_snapshots > 0
    after = lake_status(lake.database_url, config)
    assert after["snapshots"] < before["snapshots"]
    assert after["data_files"] < before["data_files"]  # merged
    assert stray not in lake_files(lake)  # the orphan is gone
    assert_parity(lake)  # the same rows
    assert isinstance(job.reader, LakeStore)
    with job.reader.connect_readonly() as con, pytest.raises(duckdb.Error):
        con.execute("SELECT count(*) FROM orders AT (VERSION => 1)").fetchall()  # expired
    # every file the catalog names is still there
    with job.reader.connect_readonly() as con:
        named = {
            r[0].split(f"{lake.lake_bucket}/", 1)[1]
            for r in con.execute(
                "SELECT data_file FROM ducklake_list_files('lake', 'orders')"
            ).fetchall()
        }
    assert named <= set(lake_files(lake))

    env = _cli_env(lake, pause_s=0)
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "etl", "status"]
    shown = await asyncio.to_thread(
        subprocess.run, cmd, cwd=REPO, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    import json

    status = json.loads(shown.stdout[shown.stdout.index("{") :])
    assert status["backend"] == "ducklake"
    assert status["lake"]["snapshots"] == after["snapshots"]
    assert {t["table"] for t in status["lake"]["tables"]} >= {"orders", "order_lines"}
    assert status["lake"]["data_bytes"] > 0


async def test_the_worker_maintains_the_lake_on_its_schedule(lake: Settings) -> None:
    from app.etl_schedule import lake_maintenance_task
    from app.stores import open_stores
    from app.worker_wiring import build_worker
    from etl.maintenance import lake_status

    seed_shop(lake)
    job = etl_job(lake)
    for _ in range(3):
        with pg(lake) as c:
            add_orders(c, 2)
        assert (await asyncio.to_thread(job.run)).status == "succeeded"
    config = lake_config(lake)
    assert config is not None
    before = lake_status(lake.database_url, config)["snapshots"]
    every_second = lake.model_copy(
        update={
            "lake_maintenance_cron": "* * * * * *",
            "lake_snapshot_retention_h": 1e-9,
            "etl_snapshot_grace_s": 0,
        }
    )
    stop = asyncio.Event()
    async with open_stores(every_second, application_name="worker-lake") as stores:
        assert "lake-maintenance" in build_worker(stores).tasks
        task = asyncio.create_task(lake_maintenance_task(stores, stop))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = await asyncio.to_thread(lake_status, lake.database_url, config)
            if now["snapshots"] < before:
                break
        stop.set()
        await task
    assert now["snapshots"] < before
    assert_parity(lake)
