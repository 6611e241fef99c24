"""nginx in front of the test's app, configured as devstack configures it (the same
template, `devstack/_config.py: render_nginx_conf`), run in the foreground by the test."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import devstack
from devstack import _config, _ready


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def has_nginx() -> bool:
    try:
        _config.nginx_binary()
    except devstack.InstallError:
        return False
    return True


@contextlib.contextmanager
def nginx_in_front(
    tmp_path: Path, upstream_ports: Sequence[int], app_env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """nginx balancing over `upstream_ports` (with the limits `app_env` gives it); its
    base URL. Stopped on exit."""
    layout = devstack.Layout(tmp_path, port_offset=0)
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.nginx_run.mkdir(parents=True, exist_ok=True)
    listen = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(_config.render_nginx_conf(layout, upstream_ports, listen, app_env))
    nginx = subprocess.Popen(
        [str(_config.nginx_binary()), "-p", str(layout.nginx_run), "-e",
         str(layout.logs / "e.log"), "-c", str(conf), "-g", "daemon off;"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{listen}"
    try:
        _ready.wait_http_ok(f"{base}/nginx-health", 10)
        yield base
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
