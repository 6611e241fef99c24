"""The app frame against the five real stores."""

from __future__ import annotations

import asyncio
import io

import duckdb
import httpx
import pytest

from analytics.duck import AnalyticsStore
from app.settings import Settings
from app.stores import Stores
from search.index_admin import ensure_alias
from storage import outbox


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"


async def test_readyz_names_every_store_and_is_green(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    lines = response.text.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "postgres",
        "redis",
        "search",
        "blobs",
        "analytics",
        "broker",
    ]
    assert all(": ok" in line for line in lines)


async def test_readyz_fails_while_the_product_index_cannot_be_searched(
    client: httpx.AsyncClient, stores: Stores
) -> None:
    """The cluster can be green while searches on the alias fail (here a read block on
    the index; after a restart, shards not searchable yet): /readyz searches the alias."""
    prefix = stores.settings.search_index_prefix
    alias = await ensure_alias(stores.search, stores.pg, prefix)
    (target,) = await stores.search.alias_targets(alias)
    assert (await client.get("/readyz")).status_code == 200
    await stores.search.put_index_settings(target, {"index": {"blocks": {"read": True}}})
    try:
        health = await stores.search.client.cluster.health()
        assert health["status"] != "red"  # what the cluster-level check alone saw
        response = await client.get("/readyz")
        assert response.status_code == 503
        lines = dict(line.split(": ", 1) for line in response.text.strip().splitlines())
        assert lines["search"].startswith("FAIL") and alias in lines["search"]
        assert lines["postgres"].startswith("ok")
    finally:
        await stores.search.put_index_settings(target, {"index": {"blocks": {"read": False}}})
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_names_the_failing_store(
    service_env: dict[str, str], settings: Settings
) -> None:
    """A store that cannot be reached turns /readyz to 503 and is named; the others stay ok."""
    from asgi_lifespan import LifespanManager

    from app.main import create_app

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(broken)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/readyz")
    assert response.status_code == 503
    lines = dict(line.split(": ", 1) for line in response.text.strip().splitlines())
    assert lines["redis"].startswith("FAIL")
    assert lines["postgres"].startswith("ok")


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'polyshop_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        response.text
    )


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    asset = await client.get("/static/swagger/swagger-ui-bundle.js")
    assert asset.status_code == 200
    schema = await client.get("/openapi.json")
    assert schema.json()["info"]["title"] == "polyshop"


async def test_unknown_path_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/path")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_postgres_schema_is_migrated_and_outbox_fans_out(stores: Stores) -> None:
    async with stores.pg.connection() as conn:
        await outbox.emit(
            conn, aggregate="product", aggregate_id=1, event_type="product.upserted", version=1
        )
        await conn.commit()
        cache_events = await outbox.claim(conn, "cache")
        search_events = await outbox.claim(conn, "search")
    assert [e.aggregate_id for e in cache_events] == [1]
    assert [e.aggregate_id for e in search_events] == [1]


async def test_redis_round_trip(stores: Stores) -> None:
    key = stores.settings.redis_prefix + "probe"
    await stores.redis.set(key, b"value", ex=10)
    assert await stores.redis.get(key) == b"value"


async def test_search_engine_round_trip(stores: Stores) -> None:
    index = f"{stores.settings.search_index_prefix}-probe"
    client = stores.search.client
    await client.index(index=index, id="1", body={"name": "chair"}, refresh=True)
    found = await client.search(index=index, body={"query": {"match": {"name": "chair"}}})
    assert found["hits"]["total"]["value"] == 1


async def test_minio_round_trip(stores: Stores) -> None:
    from storage.blobs import ensure_bucket

    bucket = stores.settings.s3_bucket
    await asyncio.to_thread(ensure_bucket, stores.blobs, bucket)
    data = b"\x89PNG fake bytes"
    await asyncio.to_thread(stores.blobs.put_object, bucket, "probe", io.BytesIO(data), len(data))
    got = await asyncio.to_thread(stores.blobs.get_object, bucket, "probe")
    try:
        assert got.read() == data
    finally:
        got.close()
        got.release_conn()


async def test_duckdb_analytical_copy_is_read_only(stores: Stores) -> None:
    assert isinstance(stores.analytics, AnalyticsStore)  # the default backend: files
    with duckdb.connect(str(stores.analytics.path)) as con:
        con.execute("CREATE TABLE t AS SELECT 42 AS answer")
    with stores.analytics.connect_readonly() as con:
        assert con.execute("SELECT answer FROM t").fetchone() == (42,)
        with pytest.raises(duckdb.Error):
            con.execute("INSERT INTO t VALUES (1)")


async def test_postgres_down_is_503_not_500(settings: Settings) -> None:
    """With no reachable Postgres, an authenticated request answers 503 problem+json."""
    from asgi_lifespan import LifespanManager

    from app.main import create_app

    dead = settings.model_copy(update={"database_url": "postgresql://polyshop@127.0.0.1:1/x"})
    app = create_app(dead)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/orders", headers={"Authorization": "Bearer psk_whatever"})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert response.json()["store"] == "postgres"
