"""The ETL against real Postgres and DuckDB: parity, incremental changes, crash recovery,
the run lock, schema drift and snapshot isolation for readers."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psycopg
import pytest

from app.etl_schedule import etl_job
from app.settings import Settings
from app.stores import Stores
from etl.runner import AlreadyRunning, EtlConfig, EtlJob
from etl.tables import SHOP, Configuration, TableSpec
from tests.support.auth import bearer

REPO = Path(__file__).resolve().parents[2]


def pg(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(
        settings.database_url,
        autocommit=True,
        options=f"-c search_path={settings.database_schema}",
    )


def seed_shop(settings: Settings, customers: int = 5, products: int = 8, orders: int = 12) -> None:
    """A small shop: every order's lines add up to its total."""
    with pg(settings) as c:
        c.execute(
            "INSERT INTO customers (email, name, country) "
            "SELECT 'c' || g || '-' || md5(random()::text) || '@x.test', 'C' || g, 'DE' "
            "FROM generate_series(1, %s) g",
            (customers,),
        )
        c.execute(
            "INSERT INTO products (sku, name, category, price_minor, attributes, rating) "
            "SELECT 'sku-' || g || '-' || md5(random()::text), 'Product ' || g, "
            "(ARRAY['Furniture/Chairs', 'Lamps', 'Books/SF'])[1 + g %% 3], 100 * g, "
            "jsonb_build_object('color', 'c' || g), (g %% 5)::numeric(2,1) "
            "FROM generate_series(1, %s) g",
            (products,),
        )
        add_orders(c, orders)


def add_orders(c: psycopg.Connection[Any], n: int) -> None:
    """n orders of 2 lines each, in one transaction (so they commit together)."""
    with c.transaction():
        c.execute(
            """WITH o AS (
                 INSERT INTO orders (customer_id, currency, total_minor, status)
                 SELECT (SELECT id FROM customers ORDER BY random() + g LIMIT 1), 'USD', 0,
                        (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[1 + g %% 4]
                   FROM generate_series(1, %s) g RETURNING id)
               INSERT INTO order_lines
               SELECT o.id, l, p.id, p.sku, p.name, l, p.price_minor, 'USD'
                 FROM o, generate_series(1, 2) l,
                      LATERAL (SELECT * FROM products ORDER BY random() + o.id + l LIMIT 1) p""",
            (n,),
        )
        c.execute(
            """UPDATE orders o SET total_minor = s.total FROM (
                 SELECT order_id, sum(quantity * unit_price_minor) AS total
                   FROM order_lines GROUP BY order_id) s
                WHERE s.order_id = o.id AND o.total_minor = 0"""
        )


def _norm(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        # the copy holds naive UTC timestamps, Postgres aware ones: compare the instants
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return value


def table_digest(rows: list[tuple[Any, ...]], json_cols: set[int]) -> tuple[int, str]:
    h = hashlib.sha256()
    for row in rows:
        values = [
            json.loads(v) if i in json_cols and isinstance(v, str) else v for i, v in enumerate(row)
        ]
        h.update(repr([_norm(v) for v in values]).encode())
    return len(rows), h.hexdigest()


def assert_parity(settings: Settings, configuration: Configuration = SHOP) -> dict[str, int]:
    """Row count and checksum of every copied table, Postgres against the published copy."""
    job = etl_job(settings)
    counts = {}
    with pg(settings) as c, job.reader.connect_readonly() as duck:
        for spec in configuration.tables:
            order = ", ".join(f'"{k}"' for k in spec.key)
            cur = c.execute(f'SELECT * FROM "{spec.name}" ORDER BY {order}')
            cols = [d.name for d in cur.description or ()]
            json_cols = {i for i, d in enumerate(cur.description or ()) if d.type_code == 3802}
            pg_rows = cur.fetchall()
            col_list = ", ".join(f'"{n}"' for n in cols)
            dk_rows = duck.execute(
                f'SELECT {col_list} FROM "{spec.name}" ORDER BY {order}'
            ).fetchall()
            assert table_digest(dk_rows, json_cols) == table_digest(pg_rows, json_cols), spec.name
            counts[spec.name] = len(pg_rows)
    return counts


def runs(settings: Settings) -> list[dict[str, Any]]:
    with pg(settings) as c:
        c.row_factory = psycopg.rows.dict_row
        return list(c.execute("SELECT * FROM etl_runs ORDER BY id").fetchall())


async def test_first_run_copies_everything_and_builds_the_star_schema(
    settings: Settings,
) -> None:
    seed_shop(settings)
    with pg(settings) as c:  # spread orders over days, around midnight in UTC and -05
        c.execute(
            "UPDATE orders SET created_at = "
            "TIMESTAMPTZ '2026-03-01 23:30:00-05' + id * INTERVAL '7 hours 10 minutes'"
        )
    result = await asyncio.to_thread(etl_job(settings).run)
    assert result.status == "succeeded", result.error
    counts = assert_parity(settings)
    assert result.rows == counts
    # where the time went: each table's load and the commit, within the run's duration
    assert set(result.seconds) == {*counts, "commit"}
    assert all(s >= 0 for s in result.seconds.values())
    assert sum(result.seconds.values()) <= result.duration_s
    with etl_job(settings).store.connect_readonly() as duck:
        facts = duck.execute("SELECT count(*), sum(revenue) FROM fact_order_lines").fetchone()
        assert facts is not None and facts[0] == counts["order_lines"]
        missing = duck.execute(
            "SELECT count(*) FROM fact_order_lines f "
            "LEFT JOIN dim_date d USING (date_key) WHERE d.date_key IS NULL"
        ).fetchone()
        assert missing == (0,)
        # timestamps land as naive UTC TIMESTAMP: the same instants (checked by the
        # parity digest above), and the date key is the UTC day of the order
        kinds = duck.execute(
            "SELECT DISTINCT data_type FROM duckdb_columns() "
            "WHERE table_name IN ('orders', 'customers', 'products') "
            "AND column_name IN ('created_at', 'updated_at')"
        ).fetchall()
        assert kinds == [("TIMESTAMP",)]
        off = duck.execute(
            "SELECT count(*) FROM fact_order_lines WHERE date_key <> CAST(ordered_at AS DATE)"
        ).fetchone()
        assert off == (0,)
    with pg(settings) as c:
        pg_days = c.execute(
            "SELECT count(DISTINCT (created_at AT TIME ZONE 'UTC')::date) FROM orders"
        ).fetchone()
    with etl_job(settings).store.connect_readonly() as duck:
        assert duck.execute("SELECT count(DISTINCT date_key) FROM fact_order_lines").fetchone() == (
            pg_days
        )
    [run] = runs(settings)
    assert run["status"] == "succeeded" and run["rows"] == counts


async def test_inserts_updates_and_deletes_arrive_incrementally(settings: Settings) -> None:
    seed_shop(settings)
    job = etl_job(settings)
    assert (await asyncio.to_thread(job.run)).status == "succeeded"
    with pg(settings) as c:
        add_orders(c, 3)  # inserts
        c.execute("UPDATE products SET name = 'Renamed', price_minor = 1 WHERE id = 1")
        c.execute("UPDATE products SET deleted_at = now() WHERE id = 2")  # soft delete
        c.execute("DELETE FROM order_lines WHERE order_id = 1 AND line_no = 2")  # hard delete
        c.execute("DELETE FROM orders WHERE id = 2")  # cascades to its lines
        c.execute("UPDATE customers SET country = 'FR' WHERE id = 1")
    result = await asyncio.to_thread(job.run)
    assert result.status == "succeeded", result.error
    assert result.kind == "incremental"
    # only the changed rows travelled, not the whole tables
    assert result.rows["products"] == 2
    assert result.rows["customers"] == 1
    assert result.rows["orders"] == 3 + 0
    assert_parity(settings)
    with job.store.connect_readonly() as duck:
        assert duck.execute("SELECT count(*) FROM orders WHERE id = 2").fetchone() == (0,)
        assert duck.execute("SELECT name FROM products WHERE id = 1").fetchone() == ("Renamed",)
        assert duck.execute(
            "SELECT is_deleted FROM dim_product WHERE product_key = 2"
        ).fetchone() == (True,)
    # a run with nothing to do copies nothing and still matches
    quiet = await asyncio.to_thread(job.run)
    assert sum(quiet.rows.values()) == 0
    assert_parity(settings)


async def test_a_new_source_column_survives(settings: Settings) -> None:
    seed_shop(settings)
    job = etl_job(settings)
    await asyncio.to_thread(job.run)
    with pg(settings) as c:
        c.execute("ALTER TABLE products ADD COLUMN colour text NOT NULL DEFAULT 'red'")
        c.execute("UPDATE products SET colour = 'blue' WHERE id = 3")
    result = await asyncio.to_thread(job.run)
    assert result.status == "succeeded", result.error
    assert_parity(settings)
    with job.store.connect_readonly() as duck:
        colours = dict(duck.execute("SELECT id, colour FROM products").fetchall())
    assert colours[3] == "blue" and colours[1] == "red"


async def test_full_refresh_and_backfill_repair_changes_the_log_never_saw(
    settings: Settings,
) -> None:
    seed_shop(settings)
    job = etl_job(settings)
    await asyncio.to_thread(job.run)
    with pg(settings) as c:
        # a change made behind the triggers' back (e.g. a restore from a dump)
        c.execute("ALTER TABLE products DISABLE TRIGGER etl_track_update")
        c.execute("UPDATE products SET name = 'Sneaky' WHERE id = 4")
        c.execute("ALTER TABLE products ENABLE TRIGGER etl_track_update")
    await asyncio.to_thread(job.run)
    with pytest.raises(AssertionError):
        assert_parity(settings)
    now = datetime.now(UTC)
    window = (now - timedelta(hours=1), now + timedelta(hours=1))
    result = await asyncio.to_thread(job.run, "backfill", window)
    assert result.status == "succeeded", result.error
    assert_parity(settings)
    with pg(settings) as c:
        c.execute("ALTER TABLE products DISABLE TRIGGER etl_track_update")
        c.execute("UPDATE products SET name = 'Sneaky again' WHERE id = 4")
    result = await asyncio.to_thread(job.run, "full")
    assert result.status == "succeeded", result.error
    assert_parity(settings)


async def test_overlapping_runs_are_refused(
    settings: Settings, stores: Stores, client: httpx.AsyncClient
) -> None:
    seed_shop(settings)
    job = etl_job(settings)
    handle = await asyncio.to_thread(job.begin)
    try:
        with pytest.raises(AlreadyRunning):
            await asyncio.to_thread(etl_job(settings).begin)
        admin = await bearer(stores, "admin")
        response = await client.post("/etl/runs", headers=admin)
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        listing = await client.get("/etl/runs", headers=admin)
        assert listing.json()["running"] is True
    finally:
        result = await asyncio.to_thread(job.execute, handle)
    assert result.status == "succeeded"
    assert_parity(settings)


async def test_post_etl_runs_queues_a_run_that_the_worker_starts(
    settings: Settings, stores: Stores, client: httpx.AsyncClient
) -> None:
    from app.etl_schedule import etl_requests_task

    seed_shop(settings)
    admin = await bearer(stores, "admin")
    assert (await client.post("/etl/runs")).status_code == 401
    response = await client.post("/etl/runs", headers=admin, json={"kind": "full"})
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["status"] == "queued" and run["kind"] == "full"
    # one request at a time: a second one while this one waits is refused
    again = await client.post("/etl/runs", headers=admin)
    assert again.status_code == 409, again.text
    # nothing runs in the API: without a worker the run stays queued
    await asyncio.sleep(0.3)
    still = (await client.get(f"/etl/runs/{run['id']}", headers=admin)).json()
    assert still["status"] == "queued"
    stop = asyncio.Event()
    worker = asyncio.create_task(etl_requests_task(stores, stop))
    try:
        deadline = time.monotonic() + 60
        while run["status"] in ("queued", "running") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            run = (await client.get(f"/etl/runs/{run['id']}", headers=admin)).json()
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
    assert run["status"] == "succeeded", run
    history = (await client.get("/etl/runs", headers=admin)).json()
    assert [r["id"] for r in history["runs"]] == [run["id"]]
    assert (await client.get("/etl/runs/999999", headers=admin)).status_code == 404
    bad = await client.post("/etl/runs", headers=admin, json={"kind": "backfill"})
    assert bad.status_code == 422
    metrics = (await client.get("/metrics")).text
    assert "polyshop_etl_data_age_seconds" in metrics
    assert_parity(settings)


async def kill_cli_run_when(env: dict[str, str], ready: Callable[[], bool]) -> None:
    """Start `polyshop etl run` in a subprocess with `env`, and kill -9 it as soon as
    `ready()` holds (polled; fails the test if it never does within 60 s)."""
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", "from app.cli import main; main()", "etl", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await asyncio.to_thread(ready):
                break
            if proc.returncode is not None:
                pytest.fail(f"the ETL subprocess ended (rc {proc.returncode}) before the point")
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the ETL subprocess never reached the point to kill it at")
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), timeout=10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _cli_env(settings: Settings, pause_s: float) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        POLYSHOP_DATABASE_URL=settings.database_url,
        POLYSHOP_DATABASE_SCHEMA=settings.database_schema,
        POLYSHOP_DUCKDB_PATH=str(settings.duckdb_path),
        POLYSHOP_ETL_TEST_PAUSE_S=str(pause_s),
        POLYSHOP_ENVIRONMENT="test",
    )
    return env


async def test_a_run_killed_half_way_is_finished_by_the_next(settings: Settings) -> None:
    seed_shop(settings)
    job = etl_job(settings)
    assert (await asyncio.to_thread(job.run)).status == "succeeded"
    published = job.store.current_snapshot()
    with pg(settings) as c:
        add_orders(c, 4)
        c.execute("DELETE FROM orders WHERE id = 3")
        c.execute("UPDATE products SET price_minor = 4242 WHERE id = 5")

    def loaded_a_table() -> bool:  # mid-load: it sleeps in the test hook after a table
        mine = [r for r in runs(settings) if r["id"] > 1]
        return bool(mine and mine[0]["rows"])

    await kill_cli_run_when(_cli_env(settings, pause_s=30), loaded_a_table)
    assert runs(settings)[-1]["status"] == "running"
    assert job.store.current_snapshot() == published  # nothing half-written was published
    with job.store.connect_readonly() as duck:
        assert duck.execute("SELECT count(*) FROM orders WHERE id = 3").fetchone() == (1,)

    result = await asyncio.to_thread(job.run)
    assert result.status == "succeeded", result.error
    statuses = [r["status"] for r in runs(settings)]
    assert statuses == ["succeeded", "abandoned", "succeeded"]
    assert_parity(settings)
    leftovers = [p.name for p in job.store.snapshot_dir.iterdir() if ".tmp" in p.name]
    assert leftovers == []


async def test_the_cli_runs_and_lists(settings: Settings) -> None:
    seed_shop(settings)
    env = _cli_env(settings, pause_s=0)
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "etl"]
    done = await asyncio.to_thread(
        subprocess.run, [*cmd, "run", "--full"], cwd=REPO, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    listed = await asyncio.to_thread(
        subprocess.run, [*cmd, "runs"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert json.loads(listed.stdout.splitlines()[0])["status"] == "succeeded"
    assert_parity(settings)


async def test_queries_during_a_run_see_one_whole_refresh(
    settings: Settings, stores: Stores, client: httpx.AsyncClient
) -> None:
    seed_shop(settings, orders=20)
    fast = etl_job(settings)
    await asyncio.to_thread(fast.run)
    with pg(settings) as c:
        add_orders(c, 30)
        before = 20
        after = c.execute("SELECT count(*) FROM orders").fetchone()
    assert after is not None
    # a slow run: it sleeps after every table, so queries land mid-run
    slow: EtlJob = etl_job(settings.model_copy(update={"etl_test_pause_s": 0.4}))
    thread = threading.Thread(target=slow.run)
    admin = await bearer(stores, "admin")
    sql = """SELECT (SELECT count(*) FROM orders) AS orders,
                    (SELECT count(*) FROM orders o WHERE total_minor <>
                       (SELECT coalesce(sum(quantity * unit_price_minor), 0)
                          FROM order_lines l WHERE l.order_id = o.id)) AS inconsistent"""
    seen = set()
    thread.start()
    try:
        while thread.is_alive():
            response = await client.post("/analytics/query", headers=admin, json={"sql": sql})
            assert response.status_code == 200, response.text
            [[orders, inconsistent]] = response.json()["rows"]
            assert inconsistent == 0
            assert orders in (before, after[0])
            seen.add(orders)
    finally:
        thread.join()
    response = await client.post("/analytics/query", headers=admin, json={"sql": sql})
    assert response.json()["rows"] == [[after[0], 0]]
    assert before in seen  # the old snapshot answered while the run was going
    assert_parity(settings)


def test_extension_is_loaded_from_the_pip_package() -> None:
    from analytics.extensions import extension_file, load_extension

    assert extension_file("postgres").is_file()
    with duckdb.connect() as con:
        load_extension(con, "postgres")
        loaded = con.execute(
            "SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'postgres_scanner'"
        ).fetchone()
    assert loaded == (True,)


def test_the_shared_writer_engine_lets_go_of_a_failed_run(
    settings: Settings, tmp_path: Path
) -> None:
    """A run that fails half way leaves nothing attached: the file is closed and
    unlocked (another process could open it), the engine serves the next run."""
    from etl import engine

    target = tmp_path / "failed.duckdb"
    with (
        pytest.raises(RuntimeError, match="half way"),
        engine.writer(target, settings.database_url, 2, "256MB") as duck,
    ):
        duck.execute("BEGIN")
        duck.execute("CREATE TABLE t AS SELECT 1 AS a")
        raise RuntimeError("the run failed half way")
    with duckdb.connect(str(target)) as other:  # would fail on DuckDB's file lock
        assert other.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
    with engine.writer(tmp_path / "next.duckdb", settings.database_url, 2, "256MB") as duck:
        attached = {
            r[0] for r in duck.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        }
        assert {"snap", "pg"} <= attached
        assert duck.execute("SELECT current_database()").fetchone() == ("snap",)
    with duckdb.connect(str(tmp_path / "next.duckdb")) as other:  # detached on success too
        assert other.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)


def test_strings_with_many_values_are_stored_uncompressed(
    settings: Settings, tmp_path: Path
) -> None:
    """Dictionary encoding of strings with many distinct values cost most of a full
    load's CPU (docs/benchmarks.md): by Postgres' statistics, those are stored plain;
    strings with few values keep DuckDB's choice (a dictionary here), and so do the
    rows an incremental run appends later."""
    with pg(settings) as c:
        c.execute("CREATE TABLE things (id bigint PRIMARY KEY, label text, code text)")
        # 2,000 labels repeated 10x: DuckDB alone would pick a dictionary for them
        c.execute(
            "INSERT INTO things SELECT g, 'label-' || (g % 2000), 'c' || (g % 3) "
            "FROM generate_series(1, 20000) g"
        )
        c.execute("ANALYZE things")
    job = EtlJob(
        EtlConfig(
            settings.database_url,
            settings.database_schema,
            tmp_path / "things.duckdb",
            Configuration("things", (TableSpec("things", ("id",)),)),
        )
    )
    assert job.run().status == "succeeded"
    with pg(settings) as c:
        c.execute(
            "INSERT INTO things SELECT g, 'label-' || (g % 2000), 'c' || (g % 3) "
            "FROM generate_series(20001, 150000) g"
        )
    result = job.run()
    assert result.status == "succeeded" and result.rows == {"things": 130000}
    with job.store.connect_readonly() as duck:
        used = dict(
            duck.execute(
                "SELECT column_name, list(DISTINCT compression) "
                "FROM pragma_storage_info('things') WHERE segment_type <> 'VALIDITY' "
                "GROUP BY ALL"
            ).fetchall()
        )
        assert duck.execute("SELECT count(*), count(DISTINCT label) FROM things").fetchone() == (
            150000,
            2000,
        )
    assert used["label"] == ["Uncompressed"]
    assert used["code"] == ["Dictionary"]


def test_the_copy_is_written_in_key_order_whatever_the_heap_order(
    settings: Settings, tmp_path: Path
) -> None:
    """A full run writes each table sorted by its key (row groups hold narrow key
    ranges); an incremental run appends its rows after those, sorted too."""
    with pg(settings) as c:
        c.execute("CREATE TABLE lines (doc bigint, n int, body text, PRIMARY KEY (doc, n))")
        # the heap in an order unrelated to the key: by a hash of it
        c.execute(
            "INSERT INTO lines SELECT d, n, md5(d || '/' || n) FROM generate_series(1, 3000) d "
            "CROSS JOIN generate_series(1, 4) n ORDER BY md5(d || '/' || n)"
        )
    job = EtlJob(
        EtlConfig(
            settings.database_url,
            settings.database_schema,
            tmp_path / "lines.duckdb",
            Configuration("lines", (TableSpec("lines", ("doc", "n")),)),
        )
    )
    assert job.run().status == "succeeded"
    with pg(settings) as c:  # an update and new rows, again in hash order
        c.execute("UPDATE lines SET body = 'changed' WHERE doc = 7")
        c.execute(
            "INSERT INTO lines SELECT d, n, 'new' FROM generate_series(3001, 3100) d "
            "CROSS JOIN generate_series(1, 4) n ORDER BY md5(d || '/' || n)"
        )
    assert job.run().rows == {"lines": 404}
    with job.store.connect_readonly() as duck:
        stored = duck.execute("SELECT doc, n FROM lines ORDER BY rowid").fetchall()
    full = [(d, n) for d in range(1, 3001) if d != 7 for n in range(1, 5)]
    appended = [(d, n) for d in [7, *range(3001, 3101)] for n in range(1, 5)]
    assert stored == full + appended


async def test_scheduled_workers_run_one_at_a_time(settings: Settings) -> None:
    """Two workers on a cron firing every second: runs happen, and never overlap."""
    from app.etl_schedule import etl_schedule_task
    from app.stores import open_stores

    seed_shop(settings)
    every_second = settings.model_copy(update={"etl_cron": "* * * * * *"})
    stop = asyncio.Event()
    async with (
        open_stores(every_second, application_name="worker-a") as a,
        open_stores(every_second, application_name="worker-b") as b,
    ):
        tasks = [asyncio.create_task(etl_schedule_task(s, stop)) for s in (a, b)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(r["status"] == "succeeded" for r in runs(settings)) >= 3:
                break
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
    history = runs(settings)
    assert sum(r["status"] == "succeeded" for r in history) >= 3
    assert {r["status"] for r in history} == {"succeeded"}
    spans = sorted((r["started_at"], r["finished_at"]) for r in history)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start  # no two runs overlapped
    assert_parity(settings)


async def test_a_changed_key_moves_in_the_copy(settings: Settings) -> None:
    seed_shop(settings)
    job = etl_job(settings)
    await asyncio.to_thread(job.run)
    with pg(settings) as c:
        c.execute("UPDATE order_lines SET line_no = 7 WHERE order_id = 4 AND line_no = 1")
        changes = c.execute("SELECT key FROM etl_changes WHERE tbl = 'order_lines'").fetchall()
    assert sorted(k["line_no"] for (k,) in changes) == [1, 7]
    assert (await asyncio.to_thread(job.run)).status == "succeeded"
    assert_parity(settings)


async def test_a_run_that_died_between_publish_and_commit_is_repaired(
    settings: Settings,
) -> None:
    seed_shop(settings)
    job = etl_job(settings)
    await asyncio.to_thread(job.run)
    with pg(settings) as c:
        saved = c.execute("SELECT tbl, last_xmin, last_snapshot FROM etl_watermarks").fetchall()
        c.execute("UPDATE products SET name = 'After' WHERE id = 6")
    second = await asyncio.to_thread(job.run)
    with pg(settings) as c:  # roll Postgres back to "published, never committed"
        c.execute(
            "UPDATE etl_runs SET status = 'running', snapshot = NULL WHERE id = %s",
            (second.run_id,),
        )
        for tbl, xmin, snap in saved:
            c.execute(
                "UPDATE etl_watermarks SET last_xmin = %s, last_snapshot = %s WHERE tbl = %s",
                (xmin, snap, tbl),
            )
        c.execute("UPDATE products SET name = 'Later' WHERE id = 7")
    third = await asyncio.to_thread(job.run)
    assert third.status == "succeeded", third.error
    assert third.rows["order_lines"] == assert_parity(settings)["order_lines"]  # full copy
    assert [r["status"] for r in runs(settings)] == ["succeeded", "abandoned", "succeeded"]


def test_the_key_index_is_found_and_a_table_without_one_still_applies_changes(
    settings: Settings,
) -> None:
    from etl import tracking

    seed_shop(settings)
    with tracking.connect(settings.database_url, settings.database_schema) as conn:
        assert tracking.key_is_indexed(conn, "order_lines", ("order_id", "line_no"))
        assert tracking.key_is_indexed(conn, "order_lines", ("line_no", "order_id"))
        assert tracking.key_is_indexed(conn, "orders", ("id",))
        assert not tracking.key_is_indexed(conn, "order_lines", ("line_no",))
        assert not tracking.key_is_indexed(conn, "order_lines", ("quantity",))
    # a declared table whose key has no index (as TPC-H's CTAS tables): the change set is
    # joined by the planner instead of probed, with the same result
    with pg(settings) as c:
        c.execute("CREATE TABLE plain AS SELECT id, name FROM products")
    config = Configuration("plain", (TableSpec("plain", ("id",)),))
    job = EtlJob(
        EtlConfig(settings.database_url, settings.database_schema, settings.duckdb_path, config)
    )
    assert job.run().status == "succeeded"
    with pg(settings) as c:
        c.execute("UPDATE plain SET name = 'changed' WHERE id = 1")
        c.execute("DELETE FROM plain WHERE id = 2")
        c.execute("INSERT INTO plain VALUES (1000, 'new')")
        expected = sorted(c.execute("SELECT id, name FROM plain").fetchall())
    result = job.run()
    assert result.status == "succeeded", result.error
    assert result.rows == {"plain": 2}
    with job.store.connect_readonly() as duck:
        assert sorted(duck.execute("SELECT id, name FROM plain").fetchall()) == expected
