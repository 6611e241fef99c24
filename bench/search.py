"""Product search benchmark: bulk indexing, query latency (app vs engine vs Postgres FTS),
suggest latency and commit-to-searchable lag.

    uv run python -m bench.search --products 20000 --queries 300 \\
        [--engines opensearch,elasticsearch] [--rounds 2]

Each engine in `--engines` (default both; the dev stack's services.env names both nodes)
is measured in the same run on the same products and query log: bulk indexing (the
reindex path vs a raw `_bulk` of the same prepared documents, the engine-bound rate),
app vs engine latency, suggest, commit-to-searchable; then Postgres full-text on the same
queries, as a ratio to each engine.

`--lock FILE` (e.g. /work/wt/bench.lock): take that flock only around each measured part
(an engine's bulk rates; its queries, suggest and lag; Postgres), and seed and build the
live index outside it, so a 100k run holds a shared machine's lock in shorter turns.

Runs in its own Postgres schema and index prefix, both removed afterwards. The app is
driven in process over ASGI (no network hop), so "app vs engine" is the cost of our
layer: validation, the DSL builder, one engine round-trip, shaping the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.relay import Relay
from app.settings import Settings, get_settings
from app.stores import Stores, open_stores
from bench.isolation import bench_settings, bench_stores, drop_bench_indices
from search.consumer import SearchIndexConsumer
from search.index_admin import alias_name, create_index, finish_bulk_load, new_index_name
from search.mapping import document
from search.query import SearchParams, search_body, suggest_body
from search.reindex import bulk_load, reindex
from search.sync import ROW_COLUMNS, apply_operations
from storage import outbox

ADJECTIVES = [
    "ergonomic",
    "compact",
    "wireless",
    "vintage",
    "modern",
    "rustic",
    "premium",
    "portable",
    "smart",
    "heavy-duty",
]
MATERIALS = [
    "oak",
    "walnut",
    "steel",
    "leather",
    "cotton",
    "bamboo",
    "glass",
    "aluminium",
    "wool",
    "linen",
]
NOUNS = [
    "chair",
    "desk",
    "lamp",
    "sofa",
    "table",
    "shelf",
    "bed",
    "rug",
    "mirror",
    "cabinet",
    "stool",
    "bench",
    "headphones",
    "speaker",
    "keyboard",
    "monitor",
    "kettle",
    "blender",
    "toaster",
    "jacket",
    "hoodie",
    "sneakers",
    "backpack",
    "bottle",
]
COLORS = ["red", "black", "white", "blue", "green", "grey", "brown"]
BRANDS = ["Acme", "Bolt", "Crest", "Dune", "Ember", "Fjord", "Glade", "Harbor", "Ivory", "Juniper"]
CATEGORIES = [
    "Furniture/Chairs/Office",
    "Furniture/Chairs/Dining",
    "Furniture/Desks",
    "Furniture/Sofas",
    "Lighting/Lamps",
    "Electronics/Audio",
    "Electronics/Computers",
    "Kitchen/Appliances",
    "Apparel/Jackets",
    "Apparel/Shoes",
]


def _product(rng: random.Random, i: int) -> tuple[Any, ...]:
    noun = rng.choice(NOUNS)
    name = f"{rng.choice(ADJECTIVES).title()} {rng.choice(MATERIALS).title()} {noun.title()}"
    description = (
        f"A {rng.choice(ADJECTIVES)} {noun} in {rng.choice(MATERIALS)}; pairs well with a "
        f"{rng.choice(NOUNS)}. {rng.choice(ADJECTIVES).title()} design, {rng.choice(COLORS)}."
    )
    attrs = json.dumps({"color": rng.choice(COLORS), "material": rng.choice(MATERIALS)})
    return (
        f"B-{i:07d}",
        name,
        description,
        rng.choice(BRANDS),
        rng.choice(CATEGORIES),
        rng.randint(500, 200_000),
        rng.randint(0, 20),
        attrs,
        round(rng.uniform(1, 5), 1),
    )


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def query_log(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """A shopper-like mix: words, pairs, typos, plurals, brands, SKU prefixes, filters."""
    log: list[dict[str, Any]] = []
    for _ in range(n):
        roll = rng.random()
        noun = rng.choice(NOUNS)
        params: dict[str, Any]
        if roll < 0.3:
            params = {"q": noun}
        elif roll < 0.5:
            params = {"q": f"{rng.choice(MATERIALS)} {noun}"}
        elif roll < 0.6:
            params = {"q": _typo(noun, rng)}
        elif roll < 0.7:
            params = {"q": noun + "s"}
        elif roll < 0.75:
            params = {"q": rng.choice(BRANDS)}
        elif roll < 0.8:
            params = {"q": f"B-{rng.randrange(10**4):04d}"}
        else:
            params = {"q": noun, "category": rng.choice(CATEGORIES).split("/")[0]}
            params["max_price"] = str(rng.choice([50, 100, 500]))
        if rng.random() < 0.2:
            params["sort"] = rng.choice(["price_asc", "price_desc", "newest", "rating"])
        log.append(params)
    return log


def _params(p: dict[str, Any]) -> SearchParams:
    return SearchParams(
        q=p.get("q", ""),
        category=p.get("category"),
        max_price_minor=int(p["max_price"]) * 100 if "max_price" in p else None,
        sort=p.get("sort", "relevance"),
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _summary(values: list[float]) -> str:
    return f"p50 {_pct(values, 0.5):.1f} ms, p99 {_pct(values, 0.99):.1f} ms"


async def _timed(calls: list[Callable[[], Awaitable[Any]]]) -> list[float]:
    out = []
    for call in calls:
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


async def seed(settings: Settings, n: int) -> None:
    rng = random.Random(42)
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await conn.execute(f'SET search_path = "{settings.database_schema}"')
        async with conn.cursor().copy(
            "COPY products (sku, name, description, brand, category, price_minor, stock,"
            " attributes, rating) FROM STDIN"
        ) as copy:
            for i in range(n):
                await copy.write_row(_product(rng, i))
        await conn.commit()


async def bench_indexing(stores: Stores, n: int, rounds: int = 2) -> dict[str, float]:
    """docs/s into a fresh index, refresh off (and no replicas) vs the live 1 s refresh.
    Two paths: the reindex path (read Postgres, build, send; client-bound here) and
    engine-bound (documents prepared in advance, 2 bulk requests in flight). Rounds
    alternate the cases and the best of each is kept."""
    prefix = stores.settings.search_index_prefix
    rates: dict[str, float] = {}
    async with stores.pg.connection() as conn:
        cur = await conn.execute(f"SELECT {ROW_COLUMNS} FROM products ORDER BY id")
        docs = [(str(r["id"]), r["version"], document(r)) for r in await cur.fetchall()]
    order = [False, True]
    for bulk in [case for r in range(rounds) for case in (order if r % 2 else order[::-1])]:
        for path in ("reindex path", "engine-bound"):
            label = f"{path}, refresh {'off' if bulk else '1 s'}"
            name = new_index_name(f"{prefix}-idx{int(bulk)}")
            await create_index(stores.search, name, bulk_load=bulk)
            started = time.perf_counter()
            if path == "reindex path":
                loaded = await bulk_load(stores.pg, stores.search, name, 1000)
            else:
                loaded = await _send_prepared(stores, name, docs)
            if bulk:
                await finish_bulk_load(stores.search, name)
            else:
                await stores.search.refresh(name)
            rate = loaded / (time.perf_counter() - started)
            rates[label] = max(rates.get(label, 0.0), rate)
            await stores.search.delete_indices([name])
            assert loaded == n, (loaded, n)
    return rates


async def _send_prepared(
    stores: Stores, index: str, docs: list[tuple[str, int, dict[str, Any]]]
) -> int:
    batches = []
    for i in range(0, len(docs), 1000):
        ops: list[dict[str, Any]] = []
        for doc_id, version, doc in docs[i : i + 1000]:
            meta = {"_index": index, "_id": doc_id, "version": version}
            ops += [{"index": {**meta, "version_type": "external"}}, doc]
        batches.append(ops)
    semaphore = asyncio.Semaphore(2)

    async def send(ops: list[dict[str, Any]]) -> int:
        async with semaphore:
            return (await apply_operations(stores.search, ops)).indexed

    return sum(await asyncio.gather(*(send(b) for b in batches)))


async def bench_lag(stores: Stores, writes: int, n_products: int) -> list[float]:
    """Update products through SQL + outbox while the relay runs; time until the new
    version is visible to a search (poll every 10 ms)."""
    index = alias_name(stores.settings.search_index_prefix)
    consumer = SearchIndexConsumer(stores.pg, stores.search, stores.settings.search_index_prefix)
    relay = Relay(stores, [consumer])
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.listening.wait(), 10)
    rng = random.Random(3)
    lags = []
    try:
        for _ in range(writes):
            pid = rng.randint(1, min(1000, n_products))
            async with stores.pg.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "UPDATE products SET price_minor = price_minor + 1, version = version + 1,"
                    " updated_at = now() WHERE id = %s RETURNING version",
                    (pid,),
                )
                row = await cur.fetchone()
                assert row is not None
                version = row["version"]
                await outbox.emit(
                    conn,
                    aggregate="product",
                    aggregate_id=pid,
                    event_type="product.upserted",
                    version=version,
                )
            committed = time.perf_counter()
            body = {"query": {"ids": {"values": [str(pid)]}}, "version": True, "_source": False}
            while True:
                hits = (await stores.search.search(index, body))["hits"]["hits"]
                if hits and hits[0]["_version"] >= version:
                    break
                await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - committed)
            await asyncio.sleep(rng.uniform(0.02, 0.1))
    finally:
        stop.set()
        await runner
    return lags


PG_FTS_SETUP = """
ALTER TABLE products ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', name), 'A')
 || setweight(to_tsvector('english', brand), 'B')
 || setweight(to_tsvector('english', replace(category, '/', ' ')), 'B')
 || setweight(to_tsvector('english', description), 'D')) STORED;
CREATE INDEX products_tsv ON products USING gin (tsv);
ANALYZE products;
"""

PG_SORTS = {
    "relevance": "rank DESC, id",
    "price_asc": "price_minor, id",
    "price_desc": "price_minor DESC, id",
    "newest": "created_at DESC, id DESC",
    "rating": "rating DESC NULLS LAST, id",
}


async def pg_search(conn: psycopg.AsyncConnection[Any], p: dict[str, Any]) -> None:
    """The closest Postgres equivalent: ranked top 20 + total, and the two term facets."""
    where = ["tsv @@ q", "deleted_at IS NULL", "status = 'active'"]
    args: dict[str, Any] = {"q": p.get("q", "")}
    if "category" in p:
        where.append("(category = %(cat)s OR category LIKE %(cat)s || '/%%')")
        args["cat"] = p["category"]
    if "max_price" in p:
        where.append("price_minor <= %(max)s")
        args["max"] = int(p["max_price"]) * 100
    cond = " AND ".join(where)
    base = f"FROM products, websearch_to_tsquery('english', %(q)s) q WHERE {cond}"
    order = PG_SORTS[p.get("sort", "relevance")]
    await (
        await conn.execute(
            f"SELECT id, name, ts_rank(tsv, q) AS rank, count(*) OVER () AS total {base}"
            f" ORDER BY {order} LIMIT 20",
            args,
        )
    ).fetchall()
    for facet in ("category", "brand"):
        await (
            await conn.execute(
                f"SELECT {facet}, count(*) {base} GROUP BY {facet} ORDER BY 2 DESC LIMIT 20", args
            )
        ).fetchall()


ENGINE_URL_VARS = {
    "opensearch": "POLYSHOP_OPENSEARCH_URL",
    "elasticsearch": "POLYSHOP_ELASTICSEARCH_URL",
}


@contextlib.asynccontextmanager
async def measuring(lock: Path | None, part: str) -> AsyncIterator[None]:
    """Hold `lock` (an flock, shared with other benchmarks) while one part is measured."""
    if lock is None:
        yield
        return
    with lock.open("a") as handle:
        waited = time.perf_counter()
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        held = time.perf_counter()
        print(f"  [{part}: lock after {held - waited:.0f} s wait; load {_loadavg()}]")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            print(f"  [{part}: lock held {time.perf_counter() - held:.0f} s]")


def engine_settings(settings: Settings, engine: str) -> Settings:
    """The run's settings pointed at `engine`'s node (the dev stack's services.env names
    both; the configured engine keeps POLYSHOP_SEARCH_URL)."""
    if engine == settings.search_engine:
        return settings
    url = os.environ.get(ENGINE_URL_VARS[engine], "")
    if not url:
        raise SystemExit(f"--engines {engine}: {ENGINE_URL_VARS[engine]} is not set")
    return settings.model_copy(update={"search_engine": engine, "search_url": url})


async def main(
    n_products: int,
    n_queries: int,
    lag_writes: int,
    engines: list[str] | None = None,
    rounds: int = 2,
    lock: Path | None = None,
) -> None:
    """`engines` None: the configured engine only."""
    settings = bench_settings(get_settings(), "search", search_timeout_s=30.0)
    engines = engines or [settings.search_engine]
    async with bench_stores(settings):
        t = time.perf_counter()
        await seed(settings, n_products)
        print(f"seeded {n_products} products in {time.perf_counter() - t:.1f} s")
        log = query_log(random.Random(9), n_queries)
        engine_p: dict[str, tuple[float, float]] = {}
        for engine in engines:
            on_engine = engine_settings(settings, engine)
            print(f"\n=== {engine} ({on_engine.search_url}); load {_loadavg()}")
            try:
                async with open_stores(on_engine, application_name="polyshop-bench") as stores:
                    engine_p[engine] = await run(
                        stores, on_engine, n_products, log, lag_writes, rounds, lock
                    )
            finally:
                if engine != settings.search_engine:  # bench_stores cleans the configured one
                    await drop_bench_indices(on_engine)
        print(f"\n=== postgres full-text, same {len(log)} queries; load {_loadavg()}")
        pg = await bench_postgres(settings, log, lock)
        for engine, (p50, p99) in engine_p.items():
            print(f"  ratio postgres/{engine} p50 {pg[0] / p50:.2f}x, p99 {pg[1] / p99:.2f}x")
    print(f"\nload average at the end: {_loadavg()}")


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


async def run(
    stores: Stores,
    settings: Settings,
    n_products: int,
    log: list[dict[str, Any]],
    lag_writes: int,
    rounds: int = 2,
    lock: Path | None = None,
) -> tuple[float, float]:
    """Every engine-side figure on one engine; its search p50/p99 (s), for the Postgres
    comparison."""
    async with measuring(lock, "bulk rates"):
        rates = await bench_indexing(stores, n_products, rounds)
    for path in ("reindex path", "engine-bound"):
        off, on = rates[f"{path}, refresh off"], rates[f"{path}, refresh 1 s"]
        print(f"bulk indexing, {path}: refresh off {off:.0f} docs/s, refresh 1 s {on:.0f} docs/s")
        print(f"  ratio off/on {off / on:.2f}x")
    print(
        "  reindex path / engine-bound (refresh off):"
        f" {rates['reindex path, refresh off'] / rates['engine-bound, refresh off']:.2f}x"
    )

    # the live index behind the alias, for the query and lag runs
    await reindex(stores.pg, stores.search, settings.search_index_prefix)
    alias = alias_name(settings.search_index_prefix)
    app = create_app(settings)
    async with (
        measuring(lock, "queries, suggest, lag"),
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            engine = stores.search

            def via_app(p: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
                async def call() -> None:
                    r = await client.get("/search/products", params=p)
                    assert r.status_code == 200, r.text

                return call

            def direct(p: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
                return lambda: engine.search(alias, search_body(_params(p)))

            await _timed([via_app(p) for p in log[:50]])  # warm caches and JIT
            await _timed([direct(p) for p in log[:50]])
            app_times, engine_times = [], []
            for p in log:  # interleaved: machine noise hits both alike
                app_times += await _timed([via_app(p)])
                engine_times += await _timed([direct(p)])
            print(f"search via app:    {_summary(app_times)}")
            print(f"search via engine: {_summary(engine_times)}")
            print(
                f"  ratio app/engine p50 {_pct(app_times, 0.5) / _pct(engine_times, 0.5):.2f}x,"
                f" p99 {_pct(app_times, 0.99) / _pct(engine_times, 0.99):.2f}x"
            )

            rng = random.Random(5)
            prefixes = [rng.choice(NOUNS + MATERIALS)[: rng.randint(1, 6)] for _ in range(300)]

            def suggest_call(prefix: str) -> Callable[[], Awaitable[Any]]:
                async def call() -> None:
                    r = await client.get("/search/suggest", params={"q": prefix})
                    assert r.status_code == 200, r.text

                return call

            suggest_times = await _timed([suggest_call(x) for x in prefixes])

            def suggest_direct(prefix: str) -> Callable[[], Awaitable[Any]]:
                return lambda: engine.search(alias, suggest_body(prefix, 10))

            suggest_engine = await _timed([suggest_direct(x) for x in prefixes])
            print(f"suggest via app:    {_summary(suggest_times)}")
            print(f"suggest via engine: {_summary(suggest_engine)}")

        lags = await bench_lag(stores, lag_writes, n_products)
    print(
        f"commit-to-searchable ({len(lags)} writes): p50 {_pct(lags, 0.5):.0f} ms,"
        f" p95 {_pct(lags, 0.95):.0f} ms, p99 {_pct(lags, 0.99):.0f} ms,"
        f" max {max(lags) * 1000:.0f} ms, mean {statistics.mean(lags) * 1000:.0f} ms"
    )
    return _pct(engine_times, 0.5), _pct(engine_times, 0.99)


async def bench_postgres(
    settings: Settings, log: list[dict[str, Any]], lock: Path | None = None
) -> tuple[float, float]:
    """The same query log on Postgres full-text (tsvector + GIN); its p50/p99 (s)."""
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await conn.execute(f'SET search_path = "{settings.database_schema}"')
        t = time.perf_counter()
        await conn.execute(PG_FTS_SETUP)
        await conn.commit()
        print(f"postgres FTS setup (tsvector column + GIN) {time.perf_counter() - t:.1f} s")

        def pg_call(p: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
            return lambda: pg_search(conn, p)

        async with measuring(lock, "postgres"):
            await _timed([pg_call(p) for p in log[:50]])
            pg_times = await _timed([pg_call(p) for p in log])
    print(f"search via postgres FTS: {_summary(pg_times)}")
    return _pct(pg_times, 0.5), _pct(pg_times, 0.99)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--lag-writes", type=int, default=100)
    parser.add_argument(
        "--engines",
        default="opensearch,elasticsearch",
        help="comma-separated, each measured in this run on the same products and queries",
    )
    parser.add_argument("--rounds", type=int, default=2, help="bulk indexing rounds (best kept)")
    parser.add_argument(
        "--lock",
        type=Path,
        help="an flock file taken only around each measured part (seeding and the live"
        " index are built outside it)",
    )
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := set(engines) - set(ENGINE_URL_VARS):
        parser.error(f"--engines: unknown {sorted(unknown)} (known: {sorted(ENGINE_URL_VARS)})")
    asyncio.run(main(args.products, args.queries, args.lag_writes, engines, args.rounds, args.lock))
