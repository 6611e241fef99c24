"""The product list pages' cache (`GET /products`): whole response bodies in Redis, under
the catalog generation (storage/answer_cache.py, namespace `catalog`; built by app/stores.py:
create_product_list_cache).

Keys: `catalog:gen` and `catalog:list:{digest}`; the digest hashes the data generation
(storage/generation.py: a restore or a failover never reads an older page) and the
request's query parameters as sent (`page_key`).

A hit is answered by a thin ASGI route (app/routes/product_list_read.py) without
FastAPI's request handling; a miss, or a request the thin route does not take, goes to
the documented route (app/routes/products.py: list_products), which validates, reads
Postgres and stores the page.

Freshness: a list page shows every product it lists, so any product write makes every
page suspect. Each request that changed products bumps the generation after its commit
and before it answers (`AnswerCache.try_bump` in app/cache_writes.py and in the
storefront's web/backend.py, counted by the wiring in app/stores.py): read-your-writes
on every replica, the next list read anywhere misses. The outbox relay bumps again for
every batch of product events (app/cache_consumer.py: writes whose request could not
bump, and writers in other processes). A fill whose Postgres read may predate a bump is never stored
(the answer cache's guarded store). `product_list_cache_ttl_s` bounds only what a bump
lost in both places would leave. Order placement moves stock, so it bumps too: at a
high order rate the pages are rebuilt more often, never served stale.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qsl

NAMESPACE = "catalog"
KIND = "list"
# Changes whenever the cached bytes would change for the same query (their shape).
FORMAT = "1"


# the query parameters of `GET /products`; others change nothing and name no other page
PARAMS = frozenset({"limit", "cursor", "category", "brand", "min_price", "max_price", "status"})


def page_key(data_generation: str, query_string: bytes) -> str:
    """The digest of one list request: its parameters as sent (in their order, decoded as
    Starlette decodes them), so the thin route (app/routes/product_list_read.py) finds
    the page without validating them: only a request the documented route validated was
    ever stored. Two spellings of one query are two entries; never one for two queries."""
    items = [
        (k, v)
        for k, v in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if k in PARAMS
    ]
    canonical = json.dumps([FORMAT, data_generation, items], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
