"""storage/answer_cache.py: every key of a namespace, its generation included, lies under
`{prefix}{namespace}:`, so a flush (`pattern()`) removes them all; a subclass's
`NAMESPACE` names it as an argument would."""

from __future__ import annotations

import fnmatch

import pytest
from redis.asyncio import Redis

from search.cache import SearchCache
from storage.answer_cache import AnswerCache


@pytest.mark.parametrize(
    ("cache", "namespace"),
    [
        (SearchCache(Redis(), prefix="p:", ttl_s=1), "search"),
        (AnswerCache(Redis(), namespace="catalog", prefix="p:", ttl_s=1), "catalog"),
    ],
)
def test_the_generation_and_the_entries_share_the_namespace(
    cache: AnswerCache, namespace: str
) -> None:
    assert cache.namespace == namespace
    assert cache.generation_key == f"p:{namespace}:gen"
    assert cache.entry_key("list", "abc") == f"p:{namespace}:list:abc"
    for key in (cache.generation_key, cache.entry_key("list", "abc")):
        assert fnmatch.fnmatchcase(key, cache.pattern())


def test_a_cache_without_a_namespace_is_refused() -> None:
    with pytest.raises(ValueError, match="namespace"):
        AnswerCache(Redis(), prefix="p:", ttl_s=1)
