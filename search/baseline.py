"""The stock baseline that `polyshop search evaluate` compares with: the engine's own
`english` analyzer over the same text fields, one plain `multi_match`, no boosts, no
synonyms, no fuzziness, no business signals. It runs on a temporary index filled with
the very documents of the live index (copied page by page), so both rankings see the
same catalog in the same run.
"""

from __future__ import annotations

from typing import Any

from search.engine import SearchEngine

BASELINE_FIELDS = ("name", "brand", "category", "description", "attributes_text")
PAGE = 1000


def baseline_index_name(alias: str, stamp: str) -> str:
    return f"{alias}_baseline_{stamp}"  # outside `<alias>-*`: not a product index


def baseline_mappings() -> dict[str, Any]:
    english = {"type": "text", "analyzer": "english"}
    return {
        # everything else in the copied documents is kept in _source but not indexed
        "dynamic": False,
        "properties": {
            "sku": {"type": "keyword"},
            "id": {"type": "long"},
            **{f: english for f in BASELINE_FIELDS},
        },
    }


def baseline_body(q: str, size: int) -> dict[str, Any]:
    return {
        "query": {"multi_match": {"query": q, "fields": list(BASELINE_FIELDS)}},
        "sort": [{"_score": "desc"}, {"id": "asc"}],
        "track_scores": True,
        "size": size,
    }


def _baseline_doc(source: dict[str, Any]) -> dict[str, Any]:
    doc = {k: source.get(k) for k in ("id", "sku", "name", "brand", "category", "description")}
    # the live index builds attributes_text with copy_to; here it is plain text
    doc["attributes_text"] = " ".join(str(v) for v in (source.get("attributes") or {}).values())
    return doc


async def build_baseline(engine: SearchEngine, source: str, name: str) -> set[str]:
    """Create index `name` and copy every document of `source` into it; the SKUs copied."""
    await engine.create_index(
        name,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
        mappings=baseline_mappings(),
    )
    skus: set[str] = set()
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "query": {"match_all": {}},
            "sort": [{"id": "asc"}],
            "size": PAGE,
            "_source": ["id", "sku", "name", "brand", "category", "description", "attributes"],
            "track_total_hits": False,
        }
        if after is not None:
            body["search_after"] = after
        hits = (await engine.search(source, body))["hits"]["hits"]
        if not hits:
            break
        ops: list[dict[str, Any]] = []
        for hit in hits:
            ops.append({"index": {"_index": name, "_id": hit["_id"]}})
            ops.append(_baseline_doc(hit["_source"]))
            skus.add(hit["_source"]["sku"])
        failed = [r for r in await engine.bulk(ops) if not r.ok]
        if failed:
            raise RuntimeError(f"baseline load refused {len(failed)} document(s): {failed[0]}")
        after = hits[-1]["sort"]
    await engine.refresh(name)
    return skus
