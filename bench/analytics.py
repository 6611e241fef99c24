"""Benchmark of the analytical copy: ETL throughput, incremental vs full, DuckDB vs Postgres.

    uv run python -m bench.analytics [--lines 1000000]   # also run with 2000000, 4000000
    uv run python -m bench.analytics --lines 10000000 --rounds 1 --query-rounds 1 --no-csv-loader

On store names of its own (bench/isolation.py: Postgres schema, lake catalog schema,
bucket, DuckDB file in a temp directory; all removed afterwards), never the shop's:
1. generates a shop (orders with 4 lines each) with SQL in Postgres;
2. baselines: a raw `COPY (SELECT ...) TO STDOUT` of the same rows, read by psycopg and
   thrown away, in text format (the issue's `COPY ... TO STDOUT`, the default format) and
   in binary format (what the ETL's loader reads); alternated with
3. loader A (the one the ETL uses): DuckDB's postgres extension, full refresh (wall time
   of the whole `EtlJob.run`, lock and bookkeeping included), best of `--rounds`;
   loader B: psycopg `COPY ... TO STDOUT (FORMAT csv)` into a file, then DuckDB
   `read_csv` with the column types of A's tables, into a new DuckDB file;
4. an empty incremental run (the fixed cost of a run), then incremental runs after
   changing 1% of the order lines (and 1% of the orders) against the full refresh;
5. 10 analytics queries on Postgres and on the DuckDB copy: one warm-up each, then
   `--rounds` alternating rounds (best of), and the two engines' results compared. Both
   engines are timed the same way: one open connection each, `execute(sql).fetchall()`.
   The fixed cost of that path is printed (`SELECT 1`), and so is that of the API's
   path (`analytics.sandbox.run_query`: a new sandboxed read-only connection per query).

6. (`--backends` containing `ducklake`, the default) the same for the DuckLake backend on
   the same data: full refresh against the raw COPY, the empty and the 1% incremental
   run, commit to queryable (COMMIT plus the time until another reader instance answers
   from the new snapshot), the ten queries against Postgres and against the file
   backend's times (lake / file), in the run's catalog schema and bucket.

The machine's load average is printed at the start, before the queries and at the end.

Both engines bucket time in UTC: the Postgres session runs with TimeZone=UTC and the
copy holds UTC timestamps. Postgres keeps its defaults (work_mem 4MB, JIT on, 2 parallel
workers) and the indexes the schema has (every primary key, order_lines(product_id),
orders(customer_id, ...), orders(created_at)); work_mem=64MB and jit=off were tried and
were not faster on these queries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import decimal
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from analytics.duck import AnalyticsStore
from analytics.sandbox import run_query
from app.settings import Settings, get_settings
from app.stores import lake_config
from bench.isolation import bench_settings, drop_bench_state
from etl import engine
from etl.runner import EtlConfig, EtlJob, Kind, RunResult
from etl.tables import SHOP
from storage import migrate

QUERIES: list[tuple[str, str]] = [
    (
        "revenue by day",
        """SELECT date_trunc('day', o.created_at) AS d,
            sum(l.quantity * l.unit_price_minor) AS revenue
       FROM order_lines l JOIN orders o ON o.id = l.order_id
      WHERE o.status <> 'cancelled' GROUP BY 1 ORDER BY 1""",
    ),
    (
        "top products",
        """SELECT p.id, p.name, sum(l.quantity * l.unit_price_minor) AS revenue
       FROM order_lines l JOIN products p ON p.id = l.product_id
      GROUP BY p.id, p.name ORDER BY revenue DESC LIMIT 20""",
    ),
    (
        "category mix",
        """SELECT split_part(p.category, '/', 1) AS c,
            sum(l.quantity * l.unit_price_minor) AS revenue
       FROM order_lines l JOIN products p ON p.id = l.product_id GROUP BY 1 ORDER BY 2 DESC""",
    ),
    (
        "repeat customers",
        """SELECT count(*) FILTER (WHERE n > 1) * 1.0 / count(*) FROM (
        SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) s""",
    ),
    (
        "average order value by month",
        """SELECT date_trunc('month', created_at), avg(total_minor)
       FROM orders GROUP BY 1 ORDER BY 1""",
    ),
    (
        "units per status",
        """SELECT o.status, sum(l.quantity), count(DISTINCT l.order_id)
       FROM order_lines l JOIN orders o ON o.id = l.order_id GROUP BY 1 ORDER BY 1""",
    ),
    (
        "revenue by country",
        """SELECT c.country, sum(l.quantity * l.unit_price_minor)
       FROM order_lines l JOIN orders o ON o.id = l.order_id
       JOIN customers c ON c.id = o.customer_id GROUP BY 1 ORDER BY 2 DESC""",
    ),
    (
        "distinct buyers per product",
        """SELECT l.product_id, count(DISTINCT o.customer_id) AS b
       FROM order_lines l JOIN orders o ON o.id = l.order_id
      GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10""",
    ),
    (
        "basket size histogram",
        """SELECT n, count(*) FROM (
        SELECT order_id, sum(quantity) AS n FROM order_lines GROUP BY order_id) s
      GROUP BY n ORDER BY n""",
    ),
    (
        "price band revenue",
        # integer arithmetic on both engines ("/" on integers divides exactly in DuckDB
        # but truncates in Postgres): each band is named by its lower bound
        """SELECT unit_price_minor - unit_price_minor % 10000 AS band, count(*),
            sum(quantity * unit_price_minor)
       FROM order_lines GROUP BY 1 ORDER BY 1""",
    ),
]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def generate(conn: psycopg.Connection[Any], lines: int) -> None:
    orders = lines // 4
    customers = max(100, orders // 10)
    conn.execute(
        """INSERT INTO customers (email, name, country)
           SELECT 'c' || g || '@bench.test', 'Customer ' || g,
                  (ARRAY['DE','FR','US','GB','NL','ES','IT','PL'])[1 + g %% 8]
             FROM generate_series(1, %s) g""",
        (customers,),
    )
    conn.execute(
        """INSERT INTO products (sku, name, category, brand, price_minor, stock)
           SELECT 'sku-' || g, 'Product ' || g,
                  (ARRAY['Furniture/Chairs','Lamps/Desk','Books/SF','Garden/Tools'])[1 + g % 4],
                  'brand' || (g % 50), 100 + (g * 7919) % 50000, 1000
             FROM generate_series(1, 5000) g"""
    )
    conn.execute(
        """INSERT INTO orders (customer_id, status, currency, total_minor, created_at)
           SELECT 1 + (g * 7) %% %s, (ARRAY['pending','paid','shipped','cancelled'])[1 + g %% 4],
                  'USD', 0, now() - (g %% 365) * interval '1 day'
             FROM generate_series(1, %s) g""",
        (customers, orders),
    )
    conn.execute(
        """INSERT INTO order_lines
           SELECT o.id, l, p.id, p.sku, p.name, 1 + (o.id + l) % 3, p.price_minor, 'USD'
             FROM orders o CROSS JOIN generate_series(1, 4) l
             JOIN products p ON p.id = 1 + (o.id * 31 + l * 17) % 5000"""
    )
    conn.execute(
        """UPDATE orders o SET total_minor = s.t FROM (
             SELECT order_id, sum(quantity * unit_price_minor) AS t FROM order_lines
              GROUP BY order_id) s WHERE s.order_id = o.id"""
    )
    conn.execute("ANALYZE")


def raw_copy(conn: psycopg.Connection[Any], fmt: str = "binary") -> int:
    """Baseline: COPY of every copied table in `fmt` (text, binary), read and discarded."""
    total = 0
    for spec in SHOP.tables:
        with conn.cursor().copy(
            f'COPY (SELECT * FROM "{spec.name}") TO STDOUT (FORMAT {fmt})'
        ) as cp:
            for block in cp:
                total += len(block)
    return total


def extension_scan(url: str, schema: str) -> None:
    """The ceiling of any load through the extension: read every column, store nothing.

    Same engine, settings and parallel scan as the ETL's writer, minus building, writing
    and publishing the DuckDB file.
    """
    with (
        tempfile.TemporaryDirectory() as tmp,
        engine.writer(Path(tmp) / "scan.duckdb", url, 2, "1GB") as duck,
    ):
        for spec in SHOP.tables:
            cols = [r[0] for r in duck.execute(f'DESCRIBE pg."{schema}"."{spec.name}"').fetchall()]
            counts = ", ".join(f'count("{c}")' for c in cols)
            duck.execute(f'SELECT {counts} FROM pg."{schema}"."{spec.name}"').fetchall()


def psycopg_csv_loader(conn: psycopg.Connection[Any], reference: Path, target: Path) -> None:
    """Loader B: psycopg COPY csv -> file -> DuckDB read_csv with the reference's types."""
    with duckdb.connect(str(reference), read_only=True) as ref:
        types = {
            spec.name: ref.execute(f'DESCRIBE "{spec.name}"').fetchall() for spec in SHOP.tables
        }
    with duckdb.connect(str(target)) as duck, tempfile.TemporaryDirectory() as tmp:
        for spec in SHOP.tables:
            path = Path(tmp) / f"{spec.name}.csv"
            with (
                open(path, "wb") as out,
                conn.cursor().copy(
                    f'COPY (SELECT * FROM "{spec.name}") TO STDOUT (FORMAT csv)'
                ) as cp,
            ):
                for block in cp:
                    out.write(block)
            columns = ", ".join(f"'{name}': '{kind}'" for name, kind, *_ in types[spec.name])
            duck.execute(
                f"CREATE TABLE \"{spec.name}\" AS SELECT * FROM read_csv('{path}', "
                f"header = false, columns = {{{columns}}})"
            )
        duck.execute("CHECKPOINT")


def run_etl(job: EtlJob, kind: Kind) -> tuple[RunResult, float]:
    """One ETL run and its wall time (lock and bookkeeping in Postgres included)."""
    started = time.perf_counter()
    result = job.run(kind)
    seconds = time.perf_counter() - started
    assert result.status == "succeeded", result.error
    return result, seconds


def best_of(n: int, fn: Callable[[], Any]) -> float:
    return min(timed(fn) for _ in range(n))


def _norm(value: Any) -> Any:
    """One engine-neutral form: instants as naive UTC, numbers to 9 significant digits."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return float(f"{float(value):.9g}")
    return value


def _rows(con: psycopg.Connection[Any] | duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return [tuple(_norm(v) for v in row) for row in con.execute(sql).fetchall()]


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def fixed_costs(
    conn: psycopg.Connection[Any], duck: duckdb.DuckDBPyConnection, store: AnalyticsStore
) -> None:
    """What a trivial query costs on each engine's timed path (best of 20)."""
    pg_s = best_of(20, lambda: conn.execute("SELECT 1").fetchall())
    dk_s = best_of(20, lambda: duck.execute("SELECT 1").fetchall())
    api_s = best_of(20, lambda: run_query(store, "SELECT 1", timeout_s=10, max_rows=10))
    print(
        f"SELECT 1: postgres {pg_s * 1000:.2f} ms, duckdb {dk_s * 1000:.2f} ms (the bench's"
        f" path); API path (sandboxed connection per query) {api_s * 1000:.2f} ms"
    )


def compare_queries(
    conn: psycopg.Connection[Any],
    duck: duckdb.DuckDBPyConnection,
    rounds: int,
    times: list[float] | None = None,
) -> list[float]:
    """Per query: warm both engines up, alternate them `rounds` times, compare results.
    DuckDB's best time per query is appended to `times` when given."""
    ratios = []
    print(f"{'query':32} {'postgres':>10} {'duckdb':>10} {'ratio':>7}  same result")
    for name, sql in QUERIES:
        same = sorted(_rows(conn, sql), key=repr) == sorted(_rows(duck, sql), key=repr)
        pg_s, dk_s = math.inf, math.inf
        for _ in range(rounds):
            pg_s = min(pg_s, timed(lambda: conn.execute(sql).fetchall()))  # noqa: B023
            dk_s = min(dk_s, timed(lambda: duck.execute(sql).fetchall()))  # noqa: B023
        ratios.append(pg_s / dk_s)
        if times is not None:
            times.append(dk_s)
        print(
            f"{name:32} {pg_s * 1000:9.1f}ms {dk_s * 1000:9.1f}ms {pg_s / dk_s:6.1f}x"
            f"  {'yes' if same else 'NO'}"
        )
    return ratios


def change_some(conn: psycopg.Connection[Any], r: int, every: int) -> None:
    """Change every `every`-th order line and order (100: 1%), a different set for each `r`."""
    conn.execute(
        "UPDATE order_lines SET quantity = quantity + 1 WHERE (order_id * 4 + line_no) %% %s = %s",
        (every, (7 + r) % every),
    )
    conn.execute(
        "UPDATE orders SET status = 'shipped', updated_at = now() WHERE id %% %s = %s",
        (every, (3 + r) % every),
    )


def phases(result: RunResult, wall_s: float) -> str:
    """A run's time by phase (tables, commit, and the lake's other phases), in ms."""
    parts = [f"{name} {seconds * 1000:.0f}" for name, seconds in result.seconds.items()]
    rest = wall_s - sum(result.seconds.values())
    return ", ".join([*parts, f"rest {rest * 1000:.0f}"]) + " ms"


def bench_lake(
    args: argparse.Namespace,
    settings: Settings,
    conn: psycopg.Connection[Any],
    rows: dict[str, int],
    total_rows: int,
    text_s: float,
    file_times: list[float],
) -> None:
    """The same figures for the DuckLake backend (catalog in Postgres, Parquet on MinIO),
    against the same Postgres data and the raw COPY baseline measured above."""
    from analytics.lake import LakeStore
    from etl.maintenance import lake_status

    # as the app configures it, on the run's own catalog schema and bucket
    # (bench/isolation.py), dropped with the rest
    lake = lake_config(settings.model_copy(update={"analytics_backend": "ducklake"}))
    assert lake is not None
    print(f"--- ducklake backend (data {lake.data_path}, catalog {lake.metadata_schema}) ---")
    job = EtlJob(
        EtlConfig(
            settings.database_url, settings.database_schema, Path("/nonexistent"), SHOP, lake=lake
        )
    )
    readers = [LakeStore(lake), LakeStore(lake)]
    try:
        full_s = math.inf
        per_round = []
        for _ in range(args.rounds):
            text_r = timed(lambda: raw_copy(conn, "text"))
            _, full_r = run_etl(job, "full")
            full_s = min(full_s, full_r)
            per_round.append(f"{text_r / full_r:.2f}")
        print(
            f"lake ETL full: {total_rows / full_s:,.0f} rows/s ({full_s:.2f} s) -> ratio vs raw"
            f" COPY text {text_s / full_s:.2f} (round by round, against that round's COPY:"
            f" {', '.join(per_round)})"
        )
        empty = math.inf
        for _ in range(args.rounds):
            quiet, quiet_s = run_etl(job, "incremental")
            empty = min(empty, quiet_s)
            print(f"  lake empty run: {quiet_s:.2f} s ({phases(quiet, quiet_s)})")
        print(f"lake empty incremental run (fixed cost): {empty:.2f} s")
        incr_s, visible = math.inf, []
        for r in range(args.rounds):
            change_some(conn, 50 + r, args.change_every)
            incr, incr_r = run_etl(job, "incremental")
            incr_s = min(incr_s, incr_r)
            # commit to queryable: the run returned; how long until a reader (another
            # DuckDB instance, as an API replica) answers from the new snapshot
            t0 = time.perf_counter()
            want = incr.run_id
            while True:
                with readers[1].connect_readonly() as con:
                    got = con.execute("SELECT run_id FROM _etl_meta").fetchone()
                if got and got[0] == want:
                    break
            visible.append(time.perf_counter() - t0 + incr.seconds.get("commit", 0.0))
            print(f"  lake incremental {r + 1}: {incr_r:.2f} s rows={incr.rows}")
            print(f"    {phases(incr, incr_r)}")
        print(
            f"lake incremental with ~{rows['order_lines'] // args.change_every:,} changed lines:"
            f" {incr_s:.2f} s -> full / incremental = {full_s / incr_s:.1f}x"
        )
        print(
            "lake commit to queryable (COMMIT + until another reader instance sees the"
            f" snapshot): best {min(visible) * 1000:.0f} ms, worst {max(visible) * 1000:.0f} ms"
        )
        status = lake_status(settings.database_url, lake)
        print(
            f"lake: {status['snapshots']} snapshots, {status['data_files']} data files"
            f" ({status['data_bytes'] / 1e6:.1f} MB), {status['delete_files']} delete files"
        )
        print(f"lake queries: {load()}")
        lake_times: list[float] = []
        with readers[0].connect_readonly() as duck:
            ratios = compare_queries(conn, duck, args.query_rounds, lake_times)
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"lake: geometric mean DuckDB speed-up over Postgres: {geo:.1f}x")
        if file_times:
            lf = [lt / ft for lt, ft in zip(lake_times, file_times, strict=True)]
            geo_lf = math.exp(sum(math.log(x) for x in lf) / len(lf))
            print(
                f"lake / file query time, geometric mean: {geo_lf:.2f}x"
                f" (per query: {', '.join(f'{x:.2f}' for x in lf)})"
            )
    finally:
        for reader in readers:
            reader.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000, help="order lines to generate")
    parser.add_argument("--url", default=None, help="Postgres (default: POLYSHOP_DATABASE_URL)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (best of)")
    parser.add_argument(
        "--backends", default="file,ducklake", help="file, ducklake or both (comma-separated)"
    )
    parser.add_argument(
        "--query-rounds", type=int, default=5, help="timed rounds per query (after a warm-up)"
    )
    parser.add_argument(
        "--no-csv-loader",
        dest="csv_loader",
        action="store_false",
        help="skip loader B (psycopg COPY csv -> DuckDB), the slowest step at 10M lines",
    )
    parser.add_argument(
        "--change-every",
        type=int,
        default=100,
        help="an incremental run follows a change of every N-th order line and order"
        " (100: 1%%; 1000 at 10M lines changes as many rows as 100 at 1M)",
    )
    args = parser.parse_args(argv)

    print(f"start: {load()}")
    # every store name of its own (bench/isolation.py): schema, lake catalog, bucket,
    # DuckDB file, ...; all dropped afterwards, whatever the environment points at.
    # The S3 endpoint and keys come from POLYSHOP_S3_* (the settings).
    workdir = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    base = get_settings()
    settings = bench_settings(
        base,
        "analytics",
        database_url=args.url or base.database_url,
        duckdb_path=workdir / "shop.duckdb",
    )
    schema = settings.database_schema
    migrate.upgrade(settings.database_url, schema)
    url = settings.database_url
    conn = psycopg.connect(url, autocommit=True, options=f"-c search_path={schema} -c TimeZone=UTC")
    try:
        gen_s = timed(lambda: generate(conn, args.lines))
        rows = {
            s.name: conn.execute(f'SELECT count(*) FROM "{s.name}"').fetchone()[0]  # type: ignore[index]
            for s in SHOP.tables
        }
        total_rows = sum(rows.values())
        print(f"generated {rows} in {gen_s:.1f} s (schema {schema})")

        job = EtlJob(EtlConfig(url, schema, settings.duckdb_path, SHOP))
        first = job.run("full")  # also installs the change-log triggers
        assert first.status == "succeeded", first.error
        # alternate the baselines and the ETL so that load from other processes on the
        # shared machine hits them alike; best of `rounds` each
        text_s = binary_s = scan_s = full_s = math.inf
        steps: dict[str, float] = {}  # of the fastest full run
        per_round = []
        for _ in range(args.rounds):
            text_r = timed(lambda: raw_copy(conn, "text"))
            binary_s = min(binary_s, timed(lambda: raw_copy(conn, "binary")))
            scan_s = min(scan_s, timed(lambda: extension_scan(url, schema)))
            full, full_r = run_etl(job, "full")
            if full_r < full_s:
                steps = {**full.seconds, "rest": full_r - sum(full.seconds.values())}
            text_s, full_s = min(text_s, text_r), min(full_s, full_r)
            per_round.append(f"{text_r / full_r:.2f}")
        reference = job.store.current_snapshot()
        print(f"snapshot file: {reference.stat().st_size / 1e6:.1f} MB")
        csv_s = (
            best_of(
                1, lambda: psycopg_csv_loader(conn, reference, workdir / f"b-{time.time()}.duckdb")
            )
            if args.csv_loader
            else math.nan
        )

        for label, base_s in (("text", text_s), ("binary", binary_s)):
            print(f"raw COPY {label}: {total_rows / base_s:,.0f} rows/s ({base_s:.2f} s)")
        print(
            f"extension scan only (read, store nothing): {total_rows / scan_s:,.0f} rows/s"
            f" ({scan_s:.2f} s) -> ratio vs raw COPY text {text_s / scan_s:.2f},"
            f" binary {binary_s / scan_s:.2f}"
        )
        print(
            f"ETL full (postgres extension): {total_rows / full_s:,.0f} rows/s ({full_s:.2f} s)"
            f" -> ratio vs raw COPY text {text_s / full_s:.2f}, binary {binary_s / full_s:.2f}"
            f" (text, round by round: {', '.join(per_round)})"
        )
        print(
            "  where the fastest full run's time went: "
            + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in steps.items())
            + " (rest: run bookkeeping in Postgres, ATTACH, star schema, publish)"
        )
        if args.csv_loader:
            print(
                f"loader B psycopg COPY csv -> DuckDB: {total_rows / csv_s:,.0f} rows/s"
                f" ({csv_s:.2f} s) -> extension is {csv_s / full_s:.2f}x faster"
            )

        empty = min(run_etl(job, "incremental")[1] for _ in range(args.rounds))
        print(f"empty incremental run (fixed cost): {empty:.2f} s")
        changed = rows["order_lines"] // args.change_every
        incr_s = math.inf
        for r in range(args.rounds):
            change_some(conn, r, args.change_every)
            incr, incr_r = run_etl(job, "incremental")
            incr_s = min(incr_s, incr_r)
            print(f"  incremental {r + 1}: {incr_r:.2f} s rows={incr.rows}")
            print(f"    {phases(incr, incr_r)}")
        print(
            f"incremental with ~{changed:,} changed lines: {incr_s:.2f} s"
            f" -> full / incremental = {full_s / incr_s:.1f}x"
        )

        store = AnalyticsStore(settings.duckdb_path)
        print(f"queries: {load()}")
        file_times: list[float] = []
        with store.connect_readonly() as duck:
            fixed_costs(conn, duck, store)
            ratios = compare_queries(conn, duck, args.query_rounds, file_times)
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"geometric mean DuckDB speed-up over Postgres: {geo:.1f}x")
        if "ducklake" in args.backends.split(","):
            bench_lake(args, settings, conn, rows, total_rows, text_s, file_times)
        print(f"end: {load()}")
    finally:
        conn.close()
        asyncio.run(drop_bench_state(settings))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
