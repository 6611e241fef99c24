"""Web storefront benchmark: the search page's server time vs the JSON API for the same
query, and the storefront's JavaScript and CSS gzipped.

    uv run python -m bench.web --products 2000 --rounds 200

Runs on store names of its own (bench/isolation.py: schema, Redis prefix, index prefix,
bucket, ...; removed afterwards). Both are
driven in process over ASGI (no network hop), alternating request by request, so the
ratio is the cost of the page over the API: the same engine query, plus one Postgres
query for the thumbnails and the Jinja2 rendering. Goals: page/API <= 1.3x; assets
<= 100 KB gzipped (run `make web-assets` first).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import statistics
import time
from pathlib import Path

import httpx
import psycopg
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings, get_settings
from app.stores import open_stores
from bench.isolation import bench_settings, bench_stores
from images.blobs import ImageBlobs
from sampledata import images as seed_images
from sampledata import shop as seeding
from search.reindex import reindex
from storage.postgres import connect_kwargs

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
STOREFRONT_ASSETS = ("dist/app.js", "app.css")  # what every storefront page loads
QUERIES = ["lamp", "chair", "oak desk", "headphone", "blue", "tent", "mug", "jacket", ""]


def asset_sizes() -> dict[str, int]:
    return {name: len(gzip.compress((STATIC / name).read_bytes(), 9)) for name in STOREFRONT_ASSETS}


def _seed(settings: Settings, n_products: int) -> None:
    kwargs = connect_kwargs(
        schema=settings.database_schema, application_name="polyshop-bench", statement_timeout_ms=0
    )
    with psycopg.connect(settings.database_url, **kwargs) as conn:
        seeding.seed(conn, products=n_products, customers=10, orders=0, seed=7, if_empty=False)


async def run(settings: Settings, n_products: int, rounds: int) -> None:
    await asyncio.to_thread(_seed, settings, n_products)
    async with open_stores(settings, application_name="polyshop-bench") as stores:
        blobs = ImageBlobs(stores.blobs, settings.s3_bucket)
        await blobs.ensure_bucket()
        await seed_images.attach(
            stores.pg,
            blobs,
            limit=n_products,
            rendition_widths=settings.image_rendition_widths,
            max_pixels=settings.image_max_pixels,
        )
        await reindex(stores.pg, stores.search, settings.search_index_prefix)
    app = create_app(settings)
    rng = random.Random(3)
    api_s: list[float] = []
    page_s: list[float] = []
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def timed(path: str, params: dict[str, str], into: list[float] | None) -> None:
                started = time.perf_counter()
                r = await client.get(path, params=params)
                elapsed = time.perf_counter() - started
                assert r.status_code == 200, r.text[:300]
                if into is not None:
                    into.append(elapsed)

            for q in QUERIES * 3:  # warm up both
                await timed("/search/products", {"q": q, "limit": "12"}, None)
                await timed("/shop", {"q": q}, None)
            for _ in range(rounds):
                q = rng.choice(QUERIES)
                pair = [
                    ("/search/products", {"q": q, "limit": "12"}, api_s),
                    ("/shop", {"q": q}, page_s),
                ]
                rng.shuffle(pair)  # neither side always goes first
                for path, params, into in pair:
                    await timed(path, params, into)
    api, page = statistics.median(api_s), statistics.median(page_s)
    api95 = statistics.quantiles(api_s, n=20)[18]
    page95 = statistics.quantiles(page_s, n=20)[18]
    print(f"search, {rounds} rounds over {len(QUERIES)} queries, {n_products} products (12 hits):")
    print(f"  JSON API /search/products  p50 {api * 1000:.2f} ms  p95 {api95 * 1000:.2f} ms")
    print(f"  page     /shop             p50 {page * 1000:.2f} ms  p95 {page95 * 1000:.2f} ms")
    print(f"  ratio page/API p50 {page / api:.2f}x (goal <= 1.3x), p95 {page95 / api95:.2f}x")


async def main(n_products: int, rounds: int) -> None:
    sizes = asset_sizes()
    for name, size in sizes.items():
        print(f"asset {name}: {size / 1024:.1f} KB gzipped")
    total = sum(sizes.values())
    print(f"storefront JS+CSS: {total / 1024:.1f} KB gzipped (goal <= 100 KB)")
    # its own schema, Redis prefix, index prefix, bucket, DuckDB file and broker prefix,
    # all removed afterwards (bench/isolation.py): the shop's stores are never touched
    settings = bench_settings(
        get_settings(),
        "web",
        search_timeout_s=30.0,  # a loaded machine: the bulk load can stall
    )
    async with bench_stores(settings):
        await run(settings, n_products, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.products, args.rounds))
