"""Money as the shop stores it: integers in hundredths of the currency unit.

Every currency the shop lists has two decimal places (`Settings.currencies` refuses the
others), so one scale serves all: the API's decimal strings ("199.99") and the stored
`*_minor` integers convert here and nowhere else.
"""

from __future__ import annotations

from decimal import Decimal

MINOR_PER_UNIT = 100


def to_minor(amount: Decimal | str) -> int:
    """A decimal amount (at most 2 decimals, validated by the caller) in hundredths."""
    return int(Decimal(amount) * MINOR_PER_UNIT)


def format_minor(minor: int) -> str:
    """Hundredths as a decimal string with two decimals: 19999 -> "199.99"."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), MINOR_PER_UNIT)
    return f"{sign}{whole}.{cents:02d}"
