"""What the soak (tests/integration/soak/) samples and how it judges the samples.

Every `SAMPLE_S` seconds: the memory of each program of the stack (supervisord's pid,
with its child processes: a Postgres backend or an nginx worker belongs to its
program), the connections open on Postgres (`pg_stat_activity`) and Redis
(`CLIENT LIST`), and the outbox backlog. Memory is the proportional set size (PSS, from
/proc/<pid>/smaps): for a one-process program it is its RSS less its
share of the shared libraries, and for a process tree it counts a page shared by several
processes once.

A program's fixed-size shared memory segment (Postgres' shared buffers: a
`/dev/zero (deleted)` or SysV mapping of the size `shared_buffers` configures) is kept
apart (`Point.shared`): its pages are touched as the data is read, so it fills towards
its configured size during a run that keeps adding orders, and can never grow past it. A
leak grows private memory; `Point.memory` is the PSS without those segments.

A series is judged by windows, never by one sample: the median of the first window
after the warm-up against the median of the last one (a garbage collection, an ETL
run's extra connection or a burst of uploads moves one sample, not a median).
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psutil

import devstack

SAMPLE_S = 10.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Point:
    """One sample, `at` seconds after the load started."""

    at: float
    memory: dict[str, int]  # program -> bytes (PSS of its process tree, shared segments out)
    postgres_connections: int
    redis_clients: int
    backlog: int
    # program -> bytes of its shared memory segments (PSS), for programs that have one
    shared: dict[str, int] = field(default_factory=dict)


def programs(layout: devstack.Layout) -> dict[str, int]:
    """Every running program of the stack (services, API replicas, worker, notifications,
    nginx) and its pid, as supervisord knows them."""
    return {
        s.name.removeprefix("api:"): s.pid
        for s in devstack.status(layout=layout)
        if s.state == "RUNNING" and s.pid
    }


# mappings of a shared memory segment in /proc/<pid>/smaps: anonymous shared memory
# (Postgres' main segment), SysV segments, POSIX shared memory
SHARED_SEGMENTS = ("/dev/zero", "/SYSV", "/dev/shm/")


@dataclass(frozen=True)
class TreeMemory:
    pss: int  # without the shared segments
    shared: int  # the shared segments' PSS


def smaps_memory(pid: int) -> TreeMemory:
    """The process's PSS in bytes, its shared memory segments' share apart: one pass over
    /proc/<pid>/smaps (a mapping's header line, then its `Field: value` lines)."""
    pss = shared = 0
    in_segment = False
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            fields = line.split(maxsplit=5)
            if not fields[0].endswith(":"):  # a mapping: address perms offset dev inode path
                path = fields[5].strip() if len(fields) > 5 else ""
                in_segment = fields[1][3] == "s" and path.startswith(SHARED_SEGMENTS)
            elif fields[0] == "Pss:":
                size = int(fields[1]) * 1024
                if in_segment:
                    shared += size
                else:
                    pss += size
    return TreeMemory(pss, shared)


def tree_memory(pid: int) -> TreeMemory:
    """The memory of the process and all its descendants (0 when it is gone)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return TreeMemory(0, 0)
    pss = shared = 0
    for proc in tree:
        with contextlib.suppress(OSError):  # gone, or not ours to read
            memory = smaps_memory(proc.pid)
            pss += memory.pss
            shared += memory.shared
    return TreeMemory(pss, shared)


def memory_of(pids: Mapping[str, int]) -> dict[str, TreeMemory]:
    return {name: tree_memory(pid) for name, pid in pids.items()}


@dataclass(frozen=True)
class Windows:
    """The samples of the first and of the last window after the warm-up."""

    first: list[Point]
    last: list[Point]


def windows(points: Sequence[Point], warmup_s: float, window_s: float) -> Windows:
    measured = [p for p in points if p.at >= warmup_s]
    if not measured:
        return Windows([], [])
    start, end = measured[0].at, measured[-1].at
    first = [p for p in measured if p.at < start + window_s]
    last = [p for p in measured if p.at > end - window_s]
    return Windows(first, last)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Verdict:
    """The growth of each series from the first window to the last, and what failed."""

    memory_growth: dict[str, float] = field(default_factory=dict)  # program -> ratio - 1
    connections: dict[str, tuple[float, float]] = field(default_factory=dict)  # first, last
    problems: list[str] = field(default_factory=list)


# Growth below this is page-level noise, not a leak: nginx at 3 MiB moves 25 % when a
# worker maps one more buffer (+0.7 MiB in a clean run on 2026-12-02).
MIN_MEMORY_GROWTH = 4 * MIB


def judge(
    w: Windows,
    *,
    max_memory_growth: float,
    connection_slack: int,
    exclude: Sequence[str] = (),
    min_memory_growth: int = MIN_MEMORY_GROWTH,
) -> Verdict:
    """Memory of each program may grow by `max_memory_growth` (0.10: 10 %) at most, unless
    it grew by less than `min_memory_growth` bytes; each connection count may rise by
    `connection_slack` at most (medians)."""
    verdict = Verdict()
    if not w.first or not w.last:
        verdict.problems.append("no samples after the warm-up")
        return verdict
    names = sorted(set(w.first[0].memory) | set(w.last[-1].memory))
    for name in names:
        if name in exclude:
            continue
        before = median([p.memory.get(name, 0) for p in w.first])
        after = median([p.memory.get(name, 0) for p in w.last])
        if before <= 0:
            verdict.problems.append(f"{name}: not running after the warm-up")
            continue
        growth = after / before - 1
        verdict.memory_growth[name] = growth
        if growth > max_memory_growth and after - before >= min_memory_growth:
            verdict.problems.append(
                f"{name}: memory {before / MIB:.1f} -> {after / MIB:.1f} MiB"
                f" (+{growth:.1%} > {max_memory_growth:.0%})"
            )
    for series in ("postgres_connections", "redis_clients"):
        before = median([getattr(p, series) for p in w.first])
        after = median([getattr(p, series) for p in w.last])
        verdict.connections[series] = (before, after)
        if after > before + connection_slack:
            verdict.problems.append(f"{series}: {before:.0f} -> {after:.0f} (not flat)")
    return verdict
