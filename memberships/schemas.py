"""Request and response bodies of /memberships."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from memberships.plans import PLANS


class MembershipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(
        description=f"one of {', '.join(sorted(PLANS))}",
        json_schema_extra={
            "enum": list[JsonValue](sorted(PLANS))
        },  # documented, so clients and fuzzers know
    )
    renews_at: AwareDatetime | None = Field(
        None, description="first renewal (default: one period from now); must be in the future"
    )

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        if value not in PLANS:
            raise ValueError(f"unknown plan; one of {', '.join(sorted(PLANS))}")
        return value


class MembershipPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    renews_at: AwareDatetime = Field(description="the new renewal date; the reminder follows")


class MembershipOut(BaseModel):
    id: int
    plan: str
    plan_name: str
    price: Decimal = Field(description="per period, decimal string")
    currency: str
    status: str
    started_at: datetime
    renews_at: datetime
    cancelled_at: datetime | None
    reminder_due_at: datetime | None = Field(description="when the renewal reminder goes out")


class MembershipPage(BaseModel):
    items: list[MembershipOut] = Field(description="active ones first, then the newest")
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )
