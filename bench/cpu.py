"""CPU time of the bench process and of the dev stack's services, from /proc (Linux).

On a shared 2-core machine a throughput ratio says little without the CPU each side
spends: `CpuMeter` reads user + system time of this process and of the services the
native dev stack runs (Postgres counted with all its backends), so a benchmark can print
core-milliseconds per operation for each. Where the stack is not ours (service URLs from
the environment, containers) or /proc is missing, only this process is measured.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import devstack

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SERVICES = ("postgres", "redis", "minio")


def _stat(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields after the command name


def _cpu_s(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else 0.0


def _children(parent: int) -> Iterable[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == parent:
                yield int(entry.name)


class CpuMeter:
    """`snapshot()` CPU seconds by name: "bench" (this process), each service found, and
    each process tree added with `watch` (a server the bench started, with its workers)."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self.trees: dict[str, int] = {}
        try:
            for service in devstack.status():
                if service.name in SERVICES and service.pid and service.state == "RUNNING":
                    self.pids[service.name] = service.pid
        except Exception:  # not our stack here: measure this process only
            self.pids = {}

    def watch(self, name: str, pid: int) -> CpuMeter:
        """Also count process `pid` and its children (as they are at each snapshot)."""
        self.trees[name] = pid
        return self

    def snapshot(self) -> dict[str, float]:
        taken = {"bench": _cpu_s(os.getpid())}
        for name, pid in self.pids.items():
            pids = [pid, *_children(pid)] if name == "postgres" else [pid]
            taken[name] = sum(_cpu_s(p) for p in pids)
        for name, pid in self.trees.items():
            taken[name] = sum(_cpu_s(p) for p in (pid, *_children(pid)))
        return taken


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per name between two snapshots (a backend that exited in between
    takes its time with it: keep connections open across the measurement)."""
    return {name: after[name] - before.get(name, 0.0) for name in after}
