"""Give the heap's free pages back to the system (glibc's `malloc_trim`).

glibc keeps memory that was freed in a thread's arena for that arena's next
allocations; it returns only the top of the main heap on its own. A job that allocates
a lot in short bursts from pool threads (the ETL: DuckDB's vectors and psycopg's buffers,
freed when the run ends) leaves free but resident pages in every arena it touched, and
the process's RSS climbs run after run as the arenas' free lists fragment.
`malloc_trim(0)` walks every arena and releases (MADV_DONTNEED) each free page.

A no-op where the C library is not glibc (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Release free heap pages of every arena; True if the C library has malloc_trim."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
