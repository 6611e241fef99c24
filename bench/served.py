"""Run the API as it is deployed, for a benchmark: `polyshop serve` (uvicorn) in a process
of its own, on a free loopback port, with settings overridden through the environment.

A bench that drives the app in process (ASGI) shares one Python process, and its GIL,
between its own client and the app; a served API has its own process(es), and pays for
HTTP parsing instead. The process is stopped by its own pid when the block exits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Served:
    base_url: str
    pid: int  # uvicorn's main process; its workers are its children


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def served_api(env: dict[str, str], *, workers: int = 1) -> Iterator[Served]:
    """The API with `env` on top of this process's environment, ready (`/healthz` 200)."""
    port = _free_port()
    polyshop = Path(sys.executable).with_name("polyshop")
    command = [str(polyshop), "serve", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, base_url)
        yield Served(base_url, server.pid)
    finally:
        server.terminate()  # uvicorn stops its workers, then itself
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_ready(server: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the API exited at start (status {server.returncode})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s")
