"""The in-process API-key cache: used only while listening, entries expire, a clear
(a revocation notification) drops everything, unknown keys are never kept."""

from __future__ import annotations

from storage.api_keys import ApiKey, ApiKeyCache

KEY = ApiKey(id=1, role="admin", customer_id=None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_live_at_most_the_ttl() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl_s=10, clock=clock)
    cache.set_listening(True)
    cache.put(b"h", KEY)
    clock.now = 9.9
    assert cache.get(b"h") == KEY
    clock.now = 10.0
    assert cache.get(b"h") is None


def test_not_listening_means_not_cached() -> None:
    cache = ApiKeyCache(ttl_s=10, clock=Clock())
    cache.put(b"h", KEY)  # before the listener is up: not kept
    cache.set_listening(True)
    assert cache.get(b"h") is None
    cache.put(b"h", KEY)
    cache.set_listening(False)  # the listening connection is lost: nothing is trusted
    assert cache.get(b"h") is None


def test_a_notification_clears_every_entry() -> None:
    cache = ApiKeyCache(ttl_s=10, clock=Clock())
    cache.set_listening(True)
    cache.put(b"a", KEY)
    cache.put(b"b", KEY)
    cache.clear()
    assert cache.get(b"a") is None and cache.get(b"b") is None


def test_ttl_zero_turns_it_off() -> None:
    cache = ApiKeyCache(ttl_s=0, clock=Clock())
    cache.set_listening(True)
    cache.put(b"h", KEY)
    assert cache.get(b"h") is None
