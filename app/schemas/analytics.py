"""Payloads of /analytics and /etl."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

JsonScalar = str | int | float | bool | None


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000, description="one SELECT or WITH statement")
    params: list[JsonScalar] = Field(
        default_factory=list, max_length=1000, description="positional parameters (? or $1)"
    )
    max_rows: int | None = Field(
        None, ge=1, description="row cap (never above the server's); `truncated` tells if hit"
    )


class QueryResultJson(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class ReportOut(BaseModel):
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    chart: dict[str, Any]


class EtlRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["incremental", "full", "backfill"] = "incremental"
    # strict: a date-time string, as the schema says (lax mode would read 0 as Unix time)
    backfill_from: datetime | None = Field(None, strict=True, description="UTC if no offset")
    backfill_to: datetime | None = Field(None, strict=True, description="UTC if no offset")

    @model_validator(mode="after")
    def _range(self) -> EtlRunIn:
        # a time without an offset means UTC, not the server's time zone
        if self.backfill_from and self.backfill_from.tzinfo is None:
            self.backfill_from = self.backfill_from.replace(tzinfo=UTC)
        if self.backfill_to and self.backfill_to.tzinfo is None:
            self.backfill_to = self.backfill_to.replace(tzinfo=UTC)
        if self.kind == "backfill":
            if self.backfill_from is None or self.backfill_to is None:
                raise ValueError("backfill_from and backfill_to are required for a backfill")
            if self.backfill_from >= self.backfill_to:
                raise ValueError("backfill_from must be before backfill_to")
        return self


class EtlRunOut(BaseModel):
    id: int
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "abandoned"]
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rows: dict[str, int]
    error: str | None
    snapshot: str | None
    source_xmin: str | None
    options: dict[str, Any]


class EtlRunsOut(BaseModel):
    running: bool
    runs: list[EtlRunOut]
