"""docker-compose.yml is checked structurally here: Docker is not available in CI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_ENV = (
    "POLYSHOP_DATABASE_URL",
    "POLYSHOP_REDIS_URL",
    "POLYSHOP_SEARCH_ENGINE",
    "POLYSHOP_SEARCH_URL",
    "POLYSHOP_S3_ENDPOINT",
    "POLYSHOP_S3_ACCESS_KEY",
    "POLYSHOP_S3_SECRET_KEY",
    "POLYSHOP_BROKER_URL",
    "POLYSHOP_SMTP_HOST",
)
ONE_SHOTS = {"minio-init", "postgres-init", "migrate"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_expected_services(services: dict[str, dict[str, Any]]) -> None:
    expected = {"postgres", "redis", "elasticsearch", "opensearch", "minio", "nginx"}
    expected |= {"rabbitmq", "mailpit"}
    assert expected | ONE_SHOTS | {"api", "worker", "notifications"} <= set(services)


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", name
        else:
            assert "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"


def test_one_shots_are_awaited_to_completion(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        for one_shot in ONE_SHOTS:
            assert deps[one_shot]["condition"] == "service_completed_successfully"


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOTS else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dep}"


def test_api_runs_two_replicas_behind_nginx(services: dict[str, dict[str, Any]]) -> None:
    assert services["api"]["deploy"]["replicas"] == 2
    assert "ports" not in services["api"], "replicas must not bind the same host port"
    assert "api" in services["nginx"]["depends_on"]
    assert any(p.endswith(":8080") for p in services["nginx"]["ports"])


def test_app_commands(services: dict[str, dict[str, Any]]) -> None:
    assert services["api"]["command"][:2] == ["polyshop", "serve"]
    assert "0.0.0.0" in services["api"]["command"]
    assert services["worker"]["command"] == ["polyshop", "worker"]
    assert services["migrate"]["command"] == ["polyshop", "migrate"]
    assert services["notifications"]["command"] == ["polyshop", "notifications"]


@pytest.mark.parametrize("name", ["api", "worker", "migrate"])
def test_app_environment(services: dict[str, dict[str, Any]], name: str) -> None:
    env = services[name]["environment"]
    missing = [key for key in APP_ENV if key not in env]
    assert not missing, f"{name} lacks {missing}"
    assert env["POLYSHOP_SEARCH_URL"].endswith("elasticsearch:9200}")
    assert "elasticsearch" in env["POLYSHOP_SEARCH_ENGINE"]
    assert env["POLYSHOP_DATABASE_URL"].split("@")[1].startswith("postgres:5432/")


def test_opensearch_is_an_optional_profile(services: dict[str, dict[str, Any]]) -> None:
    opensearch = services["opensearch"]
    assert opensearch["profiles"] == ["opensearch"]
    env = opensearch["environment"]
    assert (
        env.get("plugins.security.disabled") == "true"
        or env.get("DISABLE_SECURITY_PLUGIN") == "true"
    )
    assert "profiles" not in services["elasticsearch"]
    assert services["elasticsearch"]["environment"]["discovery.type"] == "single-node"
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "false"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image name (a built image needs a tag too)"
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_declared_volumes_are_used_and_used_volumes_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared


def test_bind_mounted_files_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), source
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).exists()


def test_minio_init_creates_the_bucket_idempotently(services: dict[str, dict[str, Any]]) -> None:
    script = " ".join(services["minio-init"]["command"])
    assert "mc mb --ignore-existing" in script
    assert "local/polyshop-images" in script


def test_nginx_config_proxies_to_api(services: dict[str, dict[str, Any]]) -> None:
    mount = next(v for v in services["nginx"]["volumes"] if "nginx.conf" in v)
    conf = (ROOT / mount.split(":")[0]).read_text()
    assert re.search(r"listen\s+8080;", conf)
    assert "resolver 127.0.0.11" in conf
    assert re.search(r"http://api:8000", conf)
    assert "proxy_pass" in conf


def test_app_dockerfile_installs_locked_dependencies() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile


def test_the_analytical_copy_is_a_lake_on_minio(services: dict[str, dict[str, Any]]) -> None:
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["POLYSHOP_ANALYTICS_BACKEND"] == "ducklake"
        assert env["POLYSHOP_S3_ENDPOINT"] == "minio:9000"
    bucket = services["api"]["environment"]["POLYSHOP_LAKE_BUCKET"]
    assert f"local/{bucket}" in " ".join(services["minio-init"]["command"])


def test_the_lake_readers_credentials_are_made_read_only(
    services: dict[str, dict[str, Any]],
) -> None:
    """The api replicas read the lake as the user minio-init makes with a read-only policy
    on the lake's prefix, and as the role postgres-init makes (no privileges of its own;
    the ETL grants it SELECT on the catalog)."""
    env = services["api"]["environment"]
    minio = " ".join(services["minio-init"]["command"])
    user = env["POLYSHOP_LAKE_READER_S3_ACCESS_KEY"]
    assert f"mc admin user add local {user} {env['POLYSHOP_LAKE_READER_S3_SECRET_KEY']}" in minio
    assert f"--user {user}" in minio
    policy = json.loads(minio.split("printf '%s' '", 1)[1].split("'", 1)[0])
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert actions == {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    prefix = f"{env['POLYSHOP_LAKE_BUCKET']}/{env.get('POLYSHOP_LAKE_PREFIX', 'analytics/')}"
    assert policy["Statement"][0]["Resource"] == [f"arn:aws:s3:::{prefix}*"]
    role = env["POLYSHOP_LAKE_READER_DATABASE_USER"]
    create = " ".join(services["postgres-init"]["entrypoint"])
    assert (
        f"CREATE ROLE {role} LOGIN PASSWORD '{env['POLYSHOP_LAKE_READER_DATABASE_PASSWORD']}'"
        in create
    )
    assert "GRANT" not in create and "SUPERUSER" not in create
