"""Which search cache entry a query string led to, in this process: the thin search
routes' lookup (app/routes/search_read.py).

The documented search routes validate a request, build the engine body from it and hash
that into the cache's digest (search/cache.py: `request_key`, ~0.25 ms for a search).
Once they answered a query string, they remember its digest here; the thin route then
looks the raw query string up and reads the entry without parsing or building anything.
A query string is in the memo only if the documented route accepted it, so the thin
route never answers what that route would refuse. The digest of a query string cannot
change in a process (the engine kind and the index alias are fixed for its life); which
answer the digest stands for is the cache's business (its generation).

Bounded: `max_entries` query strings (least recently used out first), none longer than
`max_query_bytes` (a longer one is simply always answered by the documented route).
"""

from __future__ import annotations

from collections import OrderedDict

MAX_ENTRIES = 4096
MAX_QUERY_BYTES = 2048


class SearchRequestKeys:
    """Query string -> cache digest, per kind of search answer (`products`, `suggest`)."""

    def __init__(
        self, max_entries: int = MAX_ENTRIES, max_query_bytes: int = MAX_QUERY_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_query_bytes = max_query_bytes
        self._digests: OrderedDict[tuple[str, bytes], str] = OrderedDict()

    def remember(self, kind: str, query_string: bytes, digest: str) -> None:
        """The documented route answered `query_string` from (or into) `digest`."""
        if len(query_string) > self.max_query_bytes or self.max_entries <= 0:
            return
        key = (kind, query_string)
        self._digests[key] = digest
        self._digests.move_to_end(key)
        while len(self._digests) > self.max_entries:
            self._digests.popitem(last=False)

    def recall(self, kind: str, query_string: bytes) -> str | None:
        key = (kind, query_string)
        digest = self._digests.get(key)
        if digest is not None:
            self._digests.move_to_end(key)
        return digest

    def __len__(self) -> int:
        return len(self._digests)
