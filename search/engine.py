"""One thin adapter over the Elasticsearch and OpenSearch async clients.

Both engines speak the same query DSL and mapping; the adapter hides the few places
where the two client libraries differ (constructor, keyword names, exceptions).
"""

from __future__ import annotations

from typing import Any, Literal

EngineKind = Literal["opensearch", "elasticsearch"]


class SearchEngine:
    def __init__(self, kind: EngineKind, client: Any) -> None:
        self.kind = kind
        self.client = client

    async def ping(self) -> None:
        health = await self.client.cluster.health()
        if health["status"] == "red":
            raise RuntimeError("cluster status red")

    async def close(self) -> None:
        await self.client.close()


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
