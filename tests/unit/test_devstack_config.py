"""devstack's generated configuration: instances, port offsets, API replicas behind nginx.
Pure functions; no service is started."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import devstack
from app.settings import Settings
from devstack import _config
from devstack._paths import DEFAULT_ROOT, layout_from_env


def test_default_instance_is_dot_devstack() -> None:
    layout = layout_from_env({})
    assert layout == devstack.Layout(DEFAULT_ROOT)
    assert layout.bin_dir == DEFAULT_ROOT / "bin"
    assert devstack.service_env(layout=layout)["POLYSHOP_DATABASE_URL"].endswith(
        "@127.0.0.1:55432/polyshop"
    )
    assert devstack.api_url(layout=layout) == "http://127.0.0.1:8000"


def test_env_selects_a_second_instance_that_shares_the_binaries(tmp_path: Path) -> None:
    layout = layout_from_env(
        {"POLYSHOP_DEVSTACK_DIR": str(tmp_path), "POLYSHOP_DEVSTACK_PORT_OFFSET": "1000"}
    )
    assert layout.root == tmp_path
    assert layout.data("postgres") == tmp_path / "data" / "postgres"
    assert layout.bin_dir == DEFAULT_ROOT / "bin"  # MinIO is not built twice
    env = devstack.service_env(layout=layout)
    assert env["POLYSHOP_DATABASE_URL"] == "postgresql://polyshop@127.0.0.1:56432/polyshop"
    assert env["POLYSHOP_REDIS_URL"] == "redis://127.0.0.1:57379/0"
    assert env["POLYSHOP_SEARCH_URL"] == "http://127.0.0.1:60201"
    assert env["POLYSHOP_S3_ENDPOINT"] == "127.0.0.1:60000"


def test_instances_use_disjoint_ports() -> None:
    used: dict[int, str] = {}
    for offset in (0, 1000, 2000, 6000):
        ports = devstack.Ports(offset)
        numbers = [p for group in ports.by_service().values() for p in group]
        numbers += [ports.api, ports.api + 1, ports.api + 2, ports.worker_metrics]
        for port in numbers:
            assert port not in used, f"offset {offset}: port {port} also used by {used[port]}"
            used[port] = f"offset {offset}"


def test_offset_6000_keeps_service_ports_out_of_the_ephemeral_range() -> None:
    # Mailpit's reserved base ports (51025/51026) stay in the ephemeral range at +6000;
    # a fault test that kills Mailpit would need a larger offset (+10000).
    by_service = devstack.Ports(6000).by_service()
    numbers = [p for name, group in by_service.items() if name != "mailpit" for p in group]
    assert all(60999 < port < 65536 for port in numbers)
    assert all(60999 < port < 65536 for port in devstack.Ports(10000).by_service()["mailpit"])


def test_app_programs_run_replicas_behind_nginx() -> None:
    layout = devstack.instance("unit", 1000)
    programs = {p.name: p for p in devstack.app_programs(3, layout=layout, env={"X": "1"})}
    assert set(programs) == {"api", "worker", "notifications", "nginx"}
    api = programs["api"]
    assert (api.numprocs, api.numprocs_start) == (3, 9001)
    assert "%(process_num)d" in api.command
    assert api.env["X"] == "1" and programs["worker"].env["X"] == "1"
    assert programs["worker"].env["POLYSHOP_WORKER_METRICS_PORT"] == "10101"
    nginx = programs["nginx"]
    assert "daemon off;" in nginx.command and str(layout.nginx_conf) in nginx.command
    assert nginx.stopsignal == "QUIT"


@pytest.mark.parametrize(
    ("shell", "env", "expected"),
    [
        (None, {}, "true"),  # one nginx fronts the replicas: the address bucket is its
        ("false", {}, "false"),  # the shell turns it off
        ("false", {"POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "true"}, "true"),  # the caller wins
        (None, {"POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "false"}, "false"),
    ],
)
def test_the_replicas_hand_the_address_limit_to_nginx_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, shell: str | None, env: dict[str, str], expected: str
) -> None:
    if shell is None:
        monkeypatch.delenv("POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY", raising=False)
    else:
        monkeypatch.setenv("POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY", shell)
    monkeypatch.delenv("POLYSHOP_RATE_LIMIT_ENABLED", raising=False)
    layout = devstack.instance("unit", 1000)
    api = devstack.app_programs(1, layout=layout, env=env)[0]
    assert api.env["POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY"] == expected
    conf = _config.render_nginx_conf(layout, [9001], 9000, api.env)
    key = "$binary_remote_addr" if expected == "true" else '""'
    assert f"default  {key};" in conf
    # rate limiting off (a benchmark's baseline) is off in nginx too
    off = devstack.app_programs(1, layout=layout, env={**env, "POLYSHOP_RATE_LIMIT_ENABLED": "0"})
    assert 'default  "";' in _config.render_nginx_conf(layout, [9001], 9000, off[0].env)
    monkeypatch.setenv("POLYSHOP_RATE_LIMIT_ENABLED", "false")  # from the shell, too
    off = devstack.app_programs(1, layout=layout, env=env)
    assert 'default  "";' in _config.render_nginx_conf(layout, [9001], 9000, off[0].env)


def test_compose_nginx_limits_each_address_as_the_app_would() -> None:
    """docker-compose's one nginx holds the per-address bucket with the app's default
    rate and burst; its replicas are told so (deploy/nginx.conf, docker-compose.yml)."""
    root = Path(__file__).resolve().parents[2]
    conf = (root / "deploy" / "nginx.conf").read_text()
    defaults = Settings()
    assert f"rate={round(defaults.rate_limit_address_per_s)}r/s;" in conf
    assert f"burst={defaults.rate_limit_address_capacity} nodelay;" in conf
    assert "limit_req_status 429;" in conf and "add_header Retry-After 1 always;" in conf
    assert "default  $binary_remote_addr;" in conf
    # the same exempt paths as the app's limiter and the native stack's nginx
    template = (root / "deploy" / "nginx.devstack.conf").read_text()
    exempt = next(line for line in template.splitlines() if "healthz|readyz" in line)
    assert exempt in conf
    compose = (root / "docker-compose.yml").read_text()
    assert 'POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY: "true"' in compose


def test_replicas_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLYSHOP_API_REPLICAS", raising=False)
    assert devstack.default_replicas() == 2
    monkeypatch.setenv("POLYSHOP_API_REPLICAS", "3")
    assert devstack.default_replicas() == 3
    monkeypatch.setenv("POLYSHOP_API_REPLICAS", "0")
    with pytest.raises(ValueError, match="at least 1"):
        devstack.default_replicas()


def test_supervisord_names_replicas_by_port() -> None:
    layout = devstack.instance("unit", 1000)
    api = devstack.app_programs(2, layout=layout)[0]
    text = _config.render_program(api, layout, app=True)
    assert "numprocs=2" in text and "numprocs_start=9001" in text
    assert "process_name=%(program_name)s_%(process_num)02d" in text
    # the app reaches this instance's services, not the default ones
    assert 'POLYSHOP_DATABASE_URL="postgresql://polyshop@127.0.0.1:56432/polyshop"' in text


def test_compose_rabbitmq_keeps_the_native_stacks_small_wal() -> None:
    """Both stacks bound a quorum queue's in-memory WAL entries alike (the soak's
    RabbitMQ memory): deploy/rabbitmq.conf, mounted into the image's conf.d, names the
    native stack's value."""
    root = Path(__file__).resolve().parents[2]
    native = re.search(r"^raft\.wal_max_size_bytes = (\d+)$", _config.RABBITMQ_CONF, re.M)
    assert native is not None and int(native.group(1)) <= 16 * 1024 * 1024
    assert native.group(0) in (root / "deploy" / "rabbitmq.conf").read_text().splitlines()
    compose = (root / "docker-compose.yml").read_text()
    assert "./deploy/rabbitmq.conf:/etc/rabbitmq/conf.d/20-polyshop.conf:ro" in compose


def test_nginx_conf_lists_every_replica_and_keeps_files_under_the_root(tmp_path: Path) -> None:
    layout = devstack.Layout(tmp_path, port_offset=1000)
    text = _config.render_nginx_conf(layout, [9001, 9002], 9000)
    directives = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert re.search(r"@[A-Z_]+@", directives) is None  # every placeholder filled
    assert "server 127.0.0.1:9001 " in text and "server 127.0.0.1:9002 " in text
    assert "listen 127.0.0.1:9000;" in text
    assert "proxy_next_upstream error timeout http_502;" in text
    assert f"pid {layout.nginx_run}/nginx.pid;" in text
    assert "/etc/" not in directives and "/var/" not in directives


def test_nginx_limits_per_address_only_where_the_app_hands_that_limit_to_it(
    tmp_path: Path,
) -> None:
    layout = devstack.Layout(tmp_path, port_offset=1000)
    off = _config.render_nginx_conf(layout, [9001], 9000)
    assert 'default  "";' in off  # an empty key: nginx limits nothing, the app does
    on = _config.render_nginx_conf(
        layout,
        [9001],
        9000,
        {
            "POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": "true",
            "POLYSHOP_RATE_LIMIT_ADDRESS_PER_S": "5",
            "POLYSHOP_RATE_LIMIT_ADDRESS_CAPACITY": "7",
        },
    )
    assert "default  $binary_remote_addr;" in on
    assert "rate=5r/s;" in on and "burst=7 nodelay;" in on
    assert "limit_req_status 429;" in on and "add_header Retry-After 1 always;" in on
    # without settings of its own, nginx's limit is the app's default one
    defaults = Settings()
    assert defaults.rate_limit_address_per_s == _config.ADDRESS_RATE_PER_S
    assert defaults.rate_limit_address_capacity == _config.ADDRESS_BURST
    assert f"rate={_config.ADDRESS_RATE_PER_S}r/s;" in off


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
@pytest.mark.parametrize("in_proxy", ["false", "true"])
def test_nginx_accepts_the_generated_conf(tmp_path: Path, in_proxy: str) -> None:
    layout = devstack.Layout(tmp_path, port_offset=1000)
    layout.logs.mkdir(parents=True)
    layout.nginx_run.mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    env = {"POLYSHOP_RATE_LIMIT_ADDRESS_IN_PROXY": in_proxy}
    conf.write_text(_config.render_nginx_conf(layout, [9001, 9002], 9000, env))
    done = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(layout.nginx_run),
            "-e",
            str(layout.logs / "e.log"),
            "-c",
            str(conf),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_an_offset_that_pushes_a_port_past_65535_is_refused() -> None:
    assert devstack.Ports(6224).above_max() == {}
    assert devstack.Ports(6400).above_max()["opensearch_transport"] == 65701
    with pytest.raises(devstack.StackError, match="opensearch_transport"):
        devstack.up(progress=False, layout=devstack.instance("unit", 6400))


def test_the_soak_instances_offset_shares_no_port_with_the_others() -> None:
    # tests/integration/conftest.py: +6150 beside the stack (+0 or CI's +5600), the
    # benchmarks' +2000 and the fault suite's +6000; +6100 would not do
    soak = devstack.Ports(6150)
    for offset in (0, 2000, 5600, 6000):
        assert soak.shared_with(devstack.Ports(offset)) == set(), offset
    assert devstack.Ports(6100).shared_with(devstack.Ports(6000))


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_compose_conf(tmp_path: Path) -> None:
    conf = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
    done = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "e.log"),
            "-c",
            str(conf),
            "-g",
            f"pid {tmp_path}/nginx.pid;",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
