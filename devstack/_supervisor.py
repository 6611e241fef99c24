"""supervisord control: start it, talk to it over its unix socket, stop it by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from devstack._paths import Layout


class StackError(RuntimeError):
    """The dev stack could not be brought to the requested state."""


class _NotYet(Exception):
    pass


def supervisord_pid(layout: Layout) -> int | None:
    """The pid of *our* supervisord, or None (a stale pidfile does not count)."""
    try:
        pid = int(layout.supervisord_pid.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"supervisord" in cmdline else None


@contextlib.contextmanager
def rpc(layout: Layout) -> Iterator[Any]:
    """The ``supervisor`` XML-RPC namespace (same transport supervisorctl uses)."""
    transport = SupervisorTransport(None, None, f"unix://{layout.supervisord_sock}")
    try:
        yield xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor
    finally:
        transport.close()


def call(layout: Layout, method: str, *args: Any) -> Any:
    """One XML-RPC call on a connection of its own."""
    with rpc(layout) as server:
        return getattr(server, method)(*args)


def start_supervisord(layout: Layout) -> None:
    """Launch supervisord (it daemonizes itself) and wait until its RPC answers."""
    for stale in (layout.supervisord_pid, layout.supervisord_sock):
        stale.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(layout.supervisord_conf)],
        check=True,
        stdin=subprocess.DEVNULL,
    )

    def running() -> None:
        if call(layout, "getState")["statename"] != "RUNNING":
            raise _NotYet

    for attempt in Retrying(
        stop=stop_after_delay(20),
        wait=wait_fixed(0.1),
        retry=retry_if_exception_type((OSError, _NotYet, xmlrpc.client.Fault)),
        reraise=True,
    ):
        with attempt:
            running()


def apply_config(layout: Layout) -> None:
    """Re-read supervisord.conf and add/replace/remove programs (``supervisorctl update``)."""
    with rpc(layout) as server:
        [[added, changed, removed]] = server.reloadConfig()
        for name in removed + changed:
            with contextlib.suppress(xmlrpc.client.Fault):  # not running is fine
                server.stopProcessGroup(name)
            server.removeProcessGroup(name)
        for name in changed + added:
            server.addProcessGroup(name)


def process_info(layout: Layout) -> dict[str, dict[str, Any]]:
    """``getAllProcessInfo`` keyed by ``group:name`` and, for single processes, by name."""
    info: dict[str, dict[str, Any]] = {}
    for proc in call(layout, "getAllProcessInfo"):
        info[f"{proc['group']}:{proc['name']}"] = proc
        if proc["group"] == proc["name"]:
            info[proc["name"]] = proc
    return info


def stop_supervisord(layout: Layout, timeout: float = 120) -> None:
    """Stop every program, then supervisord itself by its pid; wait until it is gone."""
    pid = supervisord_pid(layout)
    if pid is None:
        return
    with contextlib.suppress(OSError, xmlrpc.client.Fault):
        call(layout, "stopAllProcesses", True)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)

    def gone() -> None:
        if supervisord_pid(layout) == pid:
            raise _NotYet

    try:
        for attempt in Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.2),
            retry=retry_if_exception_type(_NotYet),
            reraise=True,
        ):
            with attempt:
                gone()
    except _NotYet:
        raise StackError(f"supervisord (pid {pid}) did not exit within {timeout:.0f}s") from None
