"""One thin adapter over the Elasticsearch and OpenSearch async clients.

Both engines speak the same query DSL and mapping; the adapter hides the few places
where the two client libraries differ:
- constructor arguments (`request_timeout` vs `timeout`);
- request bodies (elasticsearch-py 9 wants `operations=`/`settings=`/`actions=`,
  opensearch-py 3 wants `body=`);
- exceptions: a connection failure, timeout or 5xx/429 becomes
  `storage.errors.StoreUnavailable("search", ...)`; any other engine error becomes
  `SearchRequestError` carrying the HTTP status.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from storage.errors import StorageError, StoreUnavailable

EngineKind = Literal["opensearch", "elasticsearch"]

STORE = "search"


class SearchRequestError(StorageError):
    """The engine answered but refused the request (bad query, missing index, ...)."""

    def __init__(self, status: int, error_type: str, reason: str) -> None:
        super().__init__(f"search engine answered {status} {error_type}: {reason}")
        self.status = status
        self.error_type = error_type
        self.reason = reason


@dataclass(frozen=True)
class BulkItemResult:
    op: str  # "index" | "delete"
    id: str
    status: int
    error_type: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Applied, or harmlessly refused: 409 means the index already holds this or a
        newer version (external versioning); 404 on delete means already gone."""
        if self.status < 300 or self.status == 409:
            return True
        return self.op == "delete" and self.status == 404


# Statuses that mean "the engine is not able to serve right now": retry later.
_UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)  # opensearch-py TransportError
    if isinstance(status, int):
        return status
    meta = getattr(exc, "meta", None)  # elasticsearch-py ApiError
    status = getattr(meta, "status", None)
    return status if isinstance(status, int) else None


def _error_details(exc: BaseException) -> tuple[str, str]:
    info = getattr(exc, "info", None) or getattr(exc, "body", None)
    if isinstance(info, Mapping):
        error = info.get("error")
        if isinstance(error, Mapping):
            return str(error.get("type", "")), str(error.get("reason", ""))
        if isinstance(error, str):
            return error, error
    return type(exc).__name__, str(exc)[:500]


class SearchEngine:
    def __init__(self, kind: EngineKind, client: Any) -> None:
        self.kind = kind
        self.client = client
        self._unavailable, self._api_error = _exception_classes(kind)

    # -- error translation -------------------------------------------------------------

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except self._unavailable as exc:
            raise StoreUnavailable(STORE, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        except self._api_error as exc:
            status = _status_of(exc)
            error_type, reason = _error_details(exc)
            if status is None or status in _UNAVAILABLE_STATUSES:
                raise StoreUnavailable(STORE, f"{status} {error_type}") from exc
            raise SearchRequestError(status, error_type, reason) from exc
        except OSError as exc:  # a socket error that escaped the client's own wrapping
            raise StoreUnavailable(STORE, f"{type(exc).__name__}: {exc}") from exc

    # -- cluster -----------------------------------------------------------------------

    async def ping(self, index: str | None = None) -> None:
        """The cluster is not red and, given `index`, a search on it answers (a missing
        index is fine: nothing indexed yet). The search catches what cluster health
        does not: right after a restart the cluster can report yellow while searches
        still fail (`search_phase_execution_exception`), and a closed index."""
        with self._translate():
            health = await self.client.cluster.health()
        if health["status"] == "red":
            raise StoreUnavailable(STORE, "cluster status red")
        if index is None:
            return
        try:
            await self.search(index, {"size": 0, "track_total_hits": False})
        except SearchRequestError as exc:
            if exc.status != 404:
                raise StoreUnavailable(STORE, f"search on {index}: {exc.error_type}") from exc

    async def close(self) -> None:
        await self.client.close()

    # -- indices and aliases -----------------------------------------------------------

    async def create_index(
        self,
        name: str,
        *,
        settings: Mapping[str, Any],
        mappings: Mapping[str, Any],
        aliases: Mapping[str, Any] | None = None,
    ) -> None:
        with self._translate():
            if self.kind == "elasticsearch":
                await self.client.indices.create(
                    index=name, settings=settings, mappings=mappings, aliases=aliases
                )
            else:
                body: dict[str, Any] = {"settings": settings, "mappings": mappings}
                if aliases:
                    body["aliases"] = aliases
                await self.client.indices.create(index=name, body=body)

    async def delete_indices(self, names: Sequence[str]) -> None:
        if not names:
            return
        with self._translate():
            await self.client.indices.delete(index=",".join(names), ignore_unavailable=True)

    async def indices_matching(self, pattern: str) -> list[str]:
        with self._translate():
            try:
                found = await self.client.indices.get(index=pattern)
            except self._api_error as exc:
                if _status_of(exc) == 404:
                    return []
                raise
        return sorted(found)

    async def alias_targets(self, alias: str) -> list[str]:
        """The indices behind `alias` (empty if the alias does not exist)."""
        with self._translate():
            try:
                found = await self.client.indices.get_alias(name=alias)
            except self._api_error as exc:
                if _status_of(exc) == 404:
                    return []
                raise
        return sorted(found)

    async def update_aliases(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """Apply alias actions in ONE `_aliases` call: the engine applies them atomically."""
        with self._translate():
            if self.kind == "elasticsearch":
                await self.client.indices.update_aliases(actions=list(actions))
            else:
                await self.client.indices.update_aliases(body={"actions": list(actions)})

    async def put_index_settings(self, index: str, settings: Mapping[str, Any]) -> None:
        with self._translate():
            if self.kind == "elasticsearch":
                await self.client.indices.put_settings(index=index, settings=settings)
            else:
                await self.client.indices.put_settings(index=index, body=settings)

    async def refresh(self, index: str) -> None:
        with self._translate():
            await self.client.indices.refresh(index=index)

    # -- documents ---------------------------------------------------------------------

    async def bulk(
        self,
        operations: Sequence[Mapping[str, Any]],
        *,
        require_alias: bool = False,
        wait_for_refresh: bool = False,
    ) -> list[BulkItemResult]:
        """Send action/source lines; return one result per action, in order. A refused
        item does not raise: the caller decides what is fatal. `wait_for_refresh`: return
        once a refresh has made the writes visible to searches (`refresh=wait_for`: no
        extra refresh, the index's own interval)."""
        if not operations:
            return []
        with self._translate():
            if self.kind == "elasticsearch":
                extra: dict[str, Any] = {"refresh": "wait_for"} if wait_for_refresh else {}
                response = await self.client.bulk(
                    operations=list(operations), require_alias=require_alias, **extra
                )
            else:
                params: dict[str, str] = {}
                if require_alias:
                    params["require_alias"] = "true"
                if wait_for_refresh:
                    params["refresh"] = "wait_for"
                response = await self.client.bulk(body=list(operations), params=params or None)
        results = []
        for item in response["items"]:
            ((op, outcome),) = item.items()
            error = outcome.get("error")
            results.append(
                BulkItemResult(
                    op=op,
                    id=str(outcome.get("_id")),
                    status=int(outcome["status"]),
                    error_type=error.get("type") if isinstance(error, Mapping) else None,
                    reason=error.get("reason") if isinstance(error, Mapping) else None,
                )
            )
        return results

    async def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Run a search; the body is the engine-neutral DSL from `search.query`."""
        with self._translate():
            if self.kind == "elasticsearch":
                response = await self.client.search(index=index, body=dict(body))
                return dict(response.body)
            result: dict[str, Any] = await self.client.search(index=index, body=dict(body))
            return result


def _exception_classes(
    kind: EngineKind,
) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(transport failures, API errors) of the chosen client library."""
    if kind == "elasticsearch":
        import elastic_transport
        from elasticsearch import ApiError
        from elasticsearch import ConnectionError as EsConnectionError

        return (
            EsConnectionError,
            elastic_transport.TransportError,
        ), (ApiError,)
    from opensearchpy.exceptions import ConnectionError as OsConnectionError
    from opensearchpy.exceptions import TransportError

    # opensearch-py's ConnectionError (and ConnectionTimeout) subclass TransportError:
    # they are listed first so they win.
    return (OsConnectionError,), (TransportError,)


def create_search_engine(kind: EngineKind, url: str, *, timeout_s: float = 5.0) -> SearchEngine:
    if kind == "elasticsearch":
        from elasticsearch import AsyncElasticsearch

        es = AsyncElasticsearch(
            url, request_timeout=timeout_s, max_retries=1, retry_on_timeout=False
        )
        return SearchEngine(kind, es)
    from opensearchpy import AsyncOpenSearch

    os_client = AsyncOpenSearch(
        hosts=[url], timeout=timeout_s, max_retries=1, retry_on_timeout=False
    )
    return SearchEngine(kind, os_client)
