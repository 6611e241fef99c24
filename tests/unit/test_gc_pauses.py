"""The collector's pauses reach the histogram, once per collection, by generation."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from app import gc_pauses


def _count(generation: str) -> float:
    value = REGISTRY.get_sample_value("polyshop_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_each_collection_is_timed_once_by_its_generation() -> None:
    gc_pauses.install()
    gc_pauses.install()  # idempotent: still one hook
    before = _count("2")
    gc.collect(2)
    gc.collect(2)
    assert _count("2") == before + 2
    assert sum(1 for cb in gc.callbacks if cb is gc_pauses._timed) == 1


def test_the_startup_heap_is_frozen_out_of_full_collections() -> None:
    class Startup:  # a container object alive at startup
        pass

    alive = Startup()
    try:
        gc_pauses.freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()
    assert any(o is alive for o in gc.get_objects(generation=2))
