"""Redis cache of search answers: `GET /search/products`, `GET /search/suggest` and the
storefront's search page and autocomplete (all through `search.product_search`).

Keys (under the app's Redis prefix, so every test and benchmark keeps its own):
- `search:gen`            the search generation, a random token (no TTL);
- `search:{kind}:{digest}` the answer's JSON bytes as `b"<generation>\\n<body>"`, TTL
  `ttl_s`. `digest` hashes the normalised request (`request_key`): the engine kind, the
  index alias, and the very body sent to the engine (every parameter that changes the
  answer is in it: q as the builder strips it, filters, sort, search_after from the
  cursor, size, highlight) plus the page size and sort name the answer's cursor is made
  from.

Hit, miss, the guarded fill, single flight and the breaker are `storage/answer_cache.py`'s
(namespace `search`): one round trip on a hit; an answer that may predate a bump is never
stored under the bump's generation.

Freshness: the search consumer bumps the generation after each batch it applied, once
the batch's writes are visible to searches (its bulk waits for the refresh), a reindex
after its alias swap and final refresh, a reconcile after its repairs (and a refresh).
So a cached answer is at most as old as the index plus the moment between that refresh
and the bump; the TTL bounds everything else (a bump that failed, a worker that died
between its refresh and its bump).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from storage.answer_cache import AnswerCache, CacheResult, FillResult, Loader

__all__ = ["FORMAT", "CacheResult", "FillResult", "Kind", "Loader", "SearchCache", "request_key"]

Kind = Literal["products", "suggest"]

# Changes whenever the cached bytes would change for the same request (their shape):
# old entries are then never read, in a rolling deploy too.
FORMAT = "1"


def request_key(
    kind: Kind, engine: str, index: str, body: Mapping[str, Any], **shaping: Any
) -> str:
    """The digest of a normalised search request: two requests share an entry exactly when
    the engine gets the same request and the answer is shaped the same way (`shaping`:
    what the response is made of beyond the engine's answer, e.g. the sort name and page
    size of the next cursor)."""
    canonical = json.dumps(
        [FORMAT, kind, engine, index, body, shaping],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class SearchCache(AnswerCache):
    """The search answers' cache: namespace `search` (one per process)."""

    NAMESPACE = "search"
