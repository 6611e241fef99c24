"""`polyshop seed`: sample data for a fresh install (see sampledata/shop.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.settings import Settings, get_settings
from app.stores import create_blob_client
from images.blobs import ImageBlobs
from kit import passwords
from sampledata import images as seed_images
from sampledata import shop as seeding
from sampledata.judgments import judgments_csv
from storage.postgres import connect_kwargs, create_pool


class _RichProgress:
    """One bar per stage (products, customers, orders)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, stage: str, total: int) -> None:
        self.tasks[stage] = self.progress.add_task(stage, total=total)

    def advance(self, stage: str, n: int) -> None:
        self.progress.advance(self.tasks[stage], n)


def seed(
    products: Annotated[int, typer.Option(min=0, help="catalog size (1_000_000 works)")] = 10_000,
    customers: Annotated[int, typer.Option(min=0)] = 2_000,
    orders: Annotated[int, typer.Option(min=0, help="spread over the last 365 days")] = 20_000,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="do nothing if there are products already")
    ] = False,
    seed: Annotated[int, typer.Option(help="random seed: the same seed, the same data")] = 42,
    images: Annotated[
        int, typer.Option(min=0, help="products that get a picture (uploaded into MinIO)")
    ] = 500,
    judgments: Annotated[
        Path | None,
        typer.Option(
            help="also write the graded judgment list of the seeded products here"
            " (CSV for `polyshop search evaluate`)"
        ),
    ] = None,
) -> None:
    """Load a realistic sample catalog, customers and a year of orders.

    COPY in one transaction. Writes no outbox events: rebuild the search index and the
    analytical copy with their own commands afterwards."""
    settings = get_settings()
    console = Console(stderr=True)
    with (
        psycopg.connect(
            settings.database_url,
            **connect_kwargs(
                schema=settings.database_schema,
                application_name="polyshop-seed",
                statement_timeout_ms=0,  # a 1M-row load outlives the API's request timeout
            ),
        ) as conn,
        Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar,
    ):
        result = seeding.seed(
            conn,
            products=products,
            customers=customers,
            orders=orders,
            seed=seed,
            if_empty=if_empty,
            progress=_RichProgress(bar),
        )
    if result.skipped:
        typer.echo("products exist already: nothing seeded (--if-empty)")
    else:
        if judgments is not None:
            facts = seeding.product_facts(result.products, seed, result.product_offset)
            judgments.write_text(judgments_csv(facts), encoding="utf-8")
            typer.echo(f"wrote judgments to {judgments}")
        typer.echo(
            f"seeded {result.products} products, {result.customers} customers,"
            f" {result.orders} orders ({result.order_lines} lines) into"
            f" {settings.database_schema}"
        )
        if result.demo_emails:
            typer.echo(
                f"demo customers (password {passwords.DEMO_PASSWORD!r}, web sign-in):"
                f" {', '.join(result.demo_emails)}"
            )
    if images:  # also after --if-empty: products still without a picture get one
        pictured = asyncio.run(_seed_images(settings, images))
        typer.echo(f"gave {pictured} products a picture")


async def _seed_images(settings: Settings, limit: int) -> int:
    pool = await create_pool(
        settings.database_url, schema=settings.database_schema, application_name="polyshop-seed"
    )
    try:
        blobs = ImageBlobs(create_blob_client(settings), settings.s3_bucket)
        await blobs.ensure_bucket()
        return await seed_images.attach(
            pool,
            blobs,
            limit=limit,
            rendition_widths=settings.image_rendition_widths,
            max_pixels=settings.image_max_pixels,
        )
    finally:
        await pool.close()
