"""kit/memory.py: the worker gives free heap pages back after an ETL run (glibc)."""

from __future__ import annotations

import platform

import pytest

from kit.memory import release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_pages_are_released_on_glibc() -> None:
    assert release_free_memory() is True
    assert release_free_memory() is True  # the lookup is cached; a second call is fine
