"""The plan catalog: small and fixed, so it lives in code (a row per plan would need an
admin API for nothing). Prices in minor units (hundredths)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    price_minor: int
    currency: str
    period: timedelta


PLANS: Final[dict[str, Plan]] = {
    p.code: p
    for p in (
        Plan("plus-monthly", "Plus (monthly)", 999, "USD", timedelta(days=30)),
        Plan("plus-yearly", "Plus (yearly)", 9900, "USD", timedelta(days=365)),
        Plan("pro-yearly", "Pro (yearly)", 19900, "USD", timedelta(days=365)),
    )
}
