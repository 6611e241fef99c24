"""`polyshop images setup|gc|renditions` against the test's schema and bucket."""

from __future__ import annotations

import asyncio

import httpx
from typer.testing import CliRunner, Result

from app.commands.images import images_cli
from app.settings import Settings, get_settings
from app.stores import Stores
from images.service import image_blobs
from tests.support.images import object_keys


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "POLYSHOP_DATABASE_URL": settings.database_url,
        "POLYSHOP_DATABASE_SCHEMA": settings.database_schema,
        "POLYSHOP_S3_ENDPOINT": settings.s3_endpoint,
        "POLYSHOP_S3_ACCESS_KEY": settings.s3_access_key,
        "POLYSHOP_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "POLYSHOP_S3_BUCKET": settings.s3_bucket,
        "POLYSHOP_DUCKDB_PATH": str(settings.duckdb_path),
        **extra,
    }


async def run(env: dict[str, str], *args: str) -> Result:
    def invoke() -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(images_cli, list(args), env=env)
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(invoke)


async def test_setup_makes_a_public_bucket_and_gc_collects_orphans(
    settings: Settings, stores: Stores
) -> None:
    setup = await run(_env(settings, POLYSHOP_IMAGE_URL_MODE="public"), "setup")
    assert setup.exit_code == 0, setup.output
    assert "ready" in setup.stdout
    blobs = image_blobs(stores)
    orphan = f"images/sha256/{'ef' * 32}.png"
    await blobs.put(orphan, b"leftover", "image/png")
    url = f"http://{settings.s3_endpoint}/{settings.s3_bucket}/{orphan}"
    async with httpx.AsyncClient() as raw:
        assert (await raw.get(url)).status_code == 200  # anonymous read: the policy is set

    kept = await run(_env(settings), "gc")  # default grace: one hour
    assert kept.exit_code == 0, kept.output
    assert await object_keys(stores) == [orphan]
    collected = await run(_env(settings), "gc", "--grace-s", "0")
    assert collected.exit_code == 0, collected.output
    assert "deleted 1" in collected.stdout
    assert await object_keys(stores) == []

    nothing = await run(_env(settings), "renditions")
    assert nothing.exit_code == 0, nothing.output
    assert "0 images" in nothing.stdout
