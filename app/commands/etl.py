"""`polyshop etl run` (for system cron or a Kubernetes CronJob) and `polyshop etl runs`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from app.settings import get_settings

etl_cli = typer.Typer(help="The Postgres -> DuckDB analytical copy.", no_args_is_help=True)

EXIT_ALREADY_RUNNING = 75  # EX_TEMPFAIL: try again later


def _utc(moment: datetime) -> datetime:
    """A time given without an offset means UTC (not the server's time zone)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@etl_cli.command("run")
def run(
    full: Annotated[bool, typer.Option("--full", help="copy every table from scratch")] = False,
    backfill_from: Annotated[
        datetime | None, typer.Option(help="re-copy rows created from this time (UTC)")
    ] = None,
    backfill_to: Annotated[
        datetime | None, typer.Option(help="... up to (excluding) this time")
    ] = None,
) -> None:
    """Run the ETL once, now. Exit 75 if another run holds the lock, 1 if it failed."""
    from app.etl_schedule import etl_job
    from app.logging import configure_logging
    from etl.runner import AlreadyRunning, Kind

    settings = get_settings()
    configure_logging(settings)
    if (backfill_from is None) != (backfill_to is None):
        raise typer.BadParameter("--backfill-from and --backfill-to go together")
    if full and backfill_from:
        raise typer.BadParameter("--full and a backfill range exclude each other")
    kind: Kind = "full" if full else "backfill" if backfill_from else "incremental"
    window = (_utc(backfill_from), _utc(backfill_to)) if backfill_from and backfill_to else None
    try:
        result = etl_job(settings).run(kind, window)
    except AlreadyRunning as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_ALREADY_RUNNING) from exc
    typer.echo(json.dumps(result.__dict__, default=str))
    if result.status != "succeeded":
        raise typer.Exit(1)


@etl_cli.command("runs")
def runs(limit: int = 20) -> None:
    """The latest runs, newest first, one JSON object per line."""
    from etl.tracking import RUN_COLUMNS, connect

    settings = get_settings()
    with connect(settings.database_url, settings.database_schema) as conn:
        rows: list[dict[str, Any]] = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM etl_runs ORDER BY started_at DESC, id DESC LIMIT %s",
            (limit,),
        ).fetchall()
    for row in rows:
        typer.echo(json.dumps(row, default=str))


@etl_cli.command("status")
def status() -> None:
    """The analytical copy: backend, last run, and for the lake its snapshots, files and
    sizes (per table); for the file backend the snapshot files. One JSON object."""
    from app.stores import lake_config
    from etl.tracking import RUN_COLUMNS, connect

    settings = get_settings()
    with connect(settings.database_url, settings.database_schema) as conn:
        last = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM etl_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    out: dict[str, Any] = {"backend": settings.analytics_backend, "last_run": last}
    lake = lake_config(settings)
    if lake is not None:
        from etl.maintenance import lake_status

        try:
            out["lake"] = lake_status(settings.database_url, lake)
        except Exception as exc:  # no lake yet, or its catalog/object store is down
            out["lake"] = {"error": str(exc).splitlines()[0]}
    else:
        from analytics.duck import AnalyticsStore

        store = AnalyticsStore(settings.duckdb_path)
        files = sorted(store.snapshot_dir.glob("snapshot-*")) if store.snapshot_dir.is_dir() else []
        out["file"] = {
            "published": str(settings.duckdb_path.resolve()) if files else None,
            "snapshots": [{"file": f.name, "bytes": f.stat().st_size} for f in files],
        }
    typer.echo(json.dumps(out, default=str, indent=2))


@etl_cli.command("maintain")
def maintain() -> None:
    """One lake maintenance pass now (what the worker runs on POLYSHOP_LAKE_MAINTENANCE_CRON).
    Exit 75 if an ETL run holds the lock."""
    from app.etl_schedule import run_lake_maintenance
    from etl.maintenance import MaintenanceLocked

    settings = get_settings()
    if settings.analytics_backend != "ducklake":
        raise typer.BadParameter("POLYSHOP_ANALYTICS_BACKEND is not ducklake: nothing to maintain")
    try:
        result = run_lake_maintenance(settings)
    except MaintenanceLocked as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_ALREADY_RUNNING) from exc
    typer.echo(json.dumps(result.__dict__, default=str))
