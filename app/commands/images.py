"""`polyshop images setup|gc|renditions`: bucket bootstrap and one-off maintenance runs."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from app.settings import get_settings
from app.stores import open_stores

images_cli = typer.Typer(help="Product images in the blob store.", no_args_is_help=True)


@images_cli.command("setup")
def setup() -> None:
    """Create the image bucket, and its public-read policy when image_url_mode=public
    (idempotent; the API and the worker also do it on first use)."""

    async def run() -> None:
        from images.service import image_blobs

        async with open_stores(get_settings(), application_name="polyshop-cli-images") as s:
            await image_blobs(s).ensure_bucket()
            typer.echo(f"bucket {s.settings.s3_bucket} ready ({s.settings.image_url_mode} URLs)")

    asyncio.run(run())


@images_cli.command("gc")
def gc(
    grace_s: Annotated[
        float | None, typer.Option(help="override image_gc_grace_s (seconds)")
    ] = None,
) -> None:
    """Delete blobs no image row uses, older than the grace period, once."""

    async def run() -> None:
        from images.gc import collect_once

        settings = get_settings()
        if grace_s is not None:
            settings = settings.model_copy(update={"image_gc_grace_s": grace_s})
        async with open_stores(settings, application_name="polyshop-cli-images") as s:
            report = await collect_once(s)
        typer.echo(f"scanned {report.scanned} objects, deleted {len(report.deleted)}")

    asyncio.run(run())


@images_cli.command("renditions")
def renditions() -> None:
    """Make every pending (deferred) rendition now."""

    async def run() -> None:
        from images.renditions import make_pending

        async with open_stores(get_settings(), application_name="polyshop-cli-images") as s:
            total = 0
            while done := await make_pending(s):
                total += done
        typer.echo(f"made renditions for {total} images")

    asyncio.run(run())
