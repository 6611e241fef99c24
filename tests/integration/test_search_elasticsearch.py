"""The same adapter, mapping and query DSL against a real Elasticsearch 9 server: the
native stack's node (POLYSHOP_ELASTICSEARCH_URL; devstack/elasticsearch), else Elastic's
image where a Docker engine answers (testcontainers)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from search.engine import SearchEngine, SearchRequestError, create_search_engine
from search.index_admin import create_index, finish_bulk_load, new_index_name
from search.query import SearchParams, search_body, suggest_body
from search.sync import apply_operations, bulk_operations
from tests.support.services import docker_available

pytestmark = [pytest.mark.elasticsearch]

ES_IMAGE = "docker.elastic.co/elasticsearch/elasticsearch:9.5.3"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def es_url(service_env: dict[str, str]) -> Iterator[str]:
    if service_env.get("POLYSHOP_ELASTICSEARCH_URL"):
        yield service_env["POLYSHOP_ELASTICSEARCH_URL"]
        return
    if not docker_available():
        pytest.skip("no Elasticsearch node: POLYSHOP_ELASTICSEARCH_URL unset and no Docker")
    from testcontainers.community.elasticsearch import ElasticSearchContainer

    container = ElasticSearchContainer(ES_IMAGE, mem_limit="1g").with_env(
        "xpack.security.enabled", "false"
    )
    with container:
        yield f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"


@pytest.fixture
def prefix() -> str:
    """The test's own index names (tests run side by side on one node)."""
    return f"estest{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def engine(es_url: str, prefix: str) -> AsyncIterator[SearchEngine]:
    es = create_search_engine("elasticsearch", es_url, timeout_s=30)
    try:
        yield es
    finally:
        await es.delete_indices(await es.indices_matching(f"{prefix}-*"))
        await es.close()


def _row(pid: int, name: str, description: str, version: int = 1) -> dict[str, Any]:
    return {
        "id": pid,
        "sku": f"SKU-{pid}",
        "name": name,
        "description": description,
        "brand": "Acme",
        "category": "Furniture/Chairs",
        "price_minor": 1000 * pid,
        "currency": "USD",
        "stock": pid % 2,
        "attributes": {"color": "red"},
        "status": "active",
        "rating": None,
        "version": version,
        "created_at": NOW,
        "updated_at": NOW,
        "deleted_at": None,
    }


async def test_mapping_sync_query_and_alias_swap_work_on_elasticsearch(
    engine: SearchEngine, prefix: str
) -> None:
    alias = f"{prefix}-products"
    first = new_index_name(prefix)
    await create_index(engine, first, bulk_load=True, aliases={alias: {}})
    rows = [
        _row(1, "Office Chair", "Mesh back"),
        _row(2, "Standing Desk", "Goes with an office chair"),
    ]
    result = await apply_operations(engine, bulk_operations(alias, rows), require_alias=True)
    assert result.indexed == 2
    stale = await apply_operations(engine, bulk_operations(alias, rows), require_alias=True)
    assert stale.conflicts == 2  # external versions: a replay never regresses
    await finish_bulk_load(engine, first)

    body = await engine.search(alias, search_body(SearchParams(q="ofice chairs")))
    assert [h["_id"] for h in body["hits"]["hits"]] == ["1", "2"]
    facets = body["aggregations"]["brand"]["values"]["buckets"]
    assert facets == [{"key": "Acme", "doc_count": 2}]
    body = await engine.search(alias, suggest_body("off", 5))
    assert [h["_source"]["name"] for h in body["hits"]["hits"]] == ["Office Chair"]

    second = new_index_name(prefix)
    await create_index(engine, second, bulk_load=False)
    await engine.update_aliases(
        [{"remove": {"index": first, "alias": alias}}, {"add": {"index": second, "alias": alias}}]
    )
    assert await engine.alias_targets(alias) == [second]

    with pytest.raises(SearchRequestError):
        await engine.search(alias, {"query": {"no_such_query": {}}})


async def test_root_info_and_ping_answer(engine: SearchEngine) -> None:
    """GET / and HEAD / (the shim's rest-root on the native node): the client's info()
    and ping() work, and the node says it is Elasticsearch 9."""
    info = await engine.client.info()
    assert info["version"]["number"].startswith("9.")
    assert info["tagline"] == "You Know, for Search"
    assert await engine.client.ping() is True
