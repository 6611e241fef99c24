"""The adapter's error translation and bulk item semantics (no engine needed)."""

from __future__ import annotations

import pytest
from opensearchpy.exceptions import ConnectionError as OsConnectionError
from opensearchpy.exceptions import TransportError

from search.engine import BulkItemResult, SearchEngine, SearchRequestError, create_search_engine
from storage.errors import StoreUnavailable


class _RaisingClient:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def search(self, **_: object) -> dict[str, object]:
        raise self.exc


async def test_connection_errors_become_store_unavailable() -> None:
    engine = SearchEngine("opensearch", _RaisingClient(OsConnectionError("N/A", "refused", None)))
    with pytest.raises(StoreUnavailable) as info:
        await engine.search("i", {})
    assert info.value.store == "search"


async def test_overload_is_unavailable_but_a_bad_request_is_not() -> None:
    busy = SearchEngine("opensearch", _RaisingClient(TransportError(429, "too_many", {})))
    with pytest.raises(StoreUnavailable):
        await busy.search("i", {})
    bad = SearchEngine(
        "opensearch",
        _RaisingClient(
            TransportError(400, "x", {"error": {"type": "parsing_exception", "reason": "no"}})
        ),
    )
    with pytest.raises(SearchRequestError) as info:
        await bad.search("i", {})
    assert (info.value.status, info.value.error_type) == (400, "parsing_exception")


@pytest.mark.parametrize(
    ("op", "status", "ok"),
    [
        ("index", 201, True),
        ("index", 409, True),  # the index already holds this version or a newer one
        ("delete", 404, True),  # already gone
        ("index", 404, False),  # no such alias
        ("index", 400, False),
        ("delete", 500, False),
    ],
)
def test_bulk_item_ok(op: str, status: int, ok: bool) -> None:
    assert BulkItemResult(op=op, id="1", status=status).ok is ok


async def test_unreachable_elasticsearch_is_store_unavailable() -> None:
    es = create_search_engine("elasticsearch", "http://127.0.0.1:1", timeout_s=1)
    try:
        with pytest.raises(StoreUnavailable):
            await es.search("x", {"query": {"match_all": {}}})
    finally:
        await es.close()


def _es_api_error(status: int, body: dict[str, object]) -> Exception:
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import ApiError

    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "localhost", 9200),
    )
    return ApiError("error", meta, body)


async def test_elasticsearch_api_errors_are_translated_like_opensearch_ones() -> None:
    bad = SearchEngine(
        "elasticsearch",
        _RaisingClient(_es_api_error(400, {"error": {"type": "parsing_exception", "reason": "x"}})),
    )
    with pytest.raises(SearchRequestError) as info:
        await bad.search("i", {})
    assert info.value.status == 400 and info.value.error_type == "parsing_exception"
    busy = SearchEngine("elasticsearch", _RaisingClient(_es_api_error(503, {})))
    with pytest.raises(StoreUnavailable):
        await busy.search("i", {})


class _Recorder:
    """Records every client call as (dotted name, kwargs) and answers minimal bodies."""

    def __init__(self, calls: list[tuple[str, dict[str, object]]], name: str = "") -> None:
        self._calls = calls
        self._name = name

    def __getattr__(self, attr: str) -> _Recorder:
        return _Recorder(self._calls, f"{self._name}.{attr}".lstrip("."))

    async def __call__(self, **kwargs: object) -> dict[str, object]:
        self._calls.append((self._name, kwargs))
        return {"items": [], "hits": {"hits": []}, "status": "green"}


async def _drive(engine: SearchEngine) -> None:
    await engine.create_index("i", settings={}, mappings={}, aliases={"a": {}})
    await engine.update_aliases([{"add": {"index": "i", "alias": "a"}}])
    await engine.put_index_settings("i", {"index": {"refresh_interval": "1s"}})
    await engine.bulk([{"delete": {"_index": "a", "_id": "1"}}], require_alias=True)
    await engine.bulk([{"delete": {"_index": "a", "_id": "2"}}], wait_for_refresh=True)
    await engine.refresh("i")
    await engine.delete_indices(["i"])
    await engine.ping()


async def test_elasticsearch_calls_match_the_real_client_signatures() -> None:
    """Every keyword the adapter passes on the Elasticsearch path is one that
    elasticsearch-py 9 accepts (checked by binding against its real methods)."""
    import inspect

    from elasticsearch import AsyncElasticsearch
    from elasticsearch._async.client.cluster import ClusterClient
    from elasticsearch._async.client.indices import IndicesClient

    calls: list[tuple[str, dict[str, object]]] = []
    await _drive(SearchEngine("elasticsearch", _Recorder(calls)))
    owners = {"indices": IndicesClient, "cluster": ClusterClient}
    for name, kwargs in calls:
        owner, _, method = name.rpartition(".")
        cls = owners.get(owner, AsyncElasticsearch)
        inspect.signature(getattr(cls, method)).bind(None, **kwargs)  # raises if refused
    assert (
        "bulk",
        {"operations": [{"delete": {"_index": "a", "_id": "1"}}], "require_alias": True},
    ) in calls
    waited = {"_index": "a", "_id": "2"}
    assert (
        "bulk",
        {"operations": [{"delete": waited}], "require_alias": False, "refresh": "wait_for"},
    ) in calls


async def test_opensearch_calls_send_bodies() -> None:
    calls: list[tuple[str, dict[str, object]]] = []
    await _drive(SearchEngine("opensearch", _Recorder(calls)))
    by_name = dict(calls)
    assert by_name["indices.create"] == {
        "index": "i",
        "body": {"settings": {}, "mappings": {}, "aliases": {"a": {}}},
    }
    assert by_name["indices.update_aliases"] == {
        "body": {"actions": [{"add": {"index": "i", "alias": "a"}}]}
    }
    bulks = [kwargs["params"] for name, kwargs in calls if name == "bulk"]
    assert bulks == [{"require_alias": "true"}, {"refresh": "wait_for"}]
