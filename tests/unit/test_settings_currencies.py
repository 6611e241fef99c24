"""The shop's currencies: ISO 4217 codes with two decimal places (prices are stored in
hundredths), refused at startup otherwise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_default_currencies() -> None:
    assert Settings().currencies == ["USD", "EUR", "GBP"]


def test_currencies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSHOP_CURRENCIES", '["CHF", "SEK"]')
    assert Settings().currencies == ["CHF", "SEK"]


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (["USD", "JPY"], "JPY does not have 2 decimal places"),
        (["KWD"], "KWD does not have 2 decimal places"),
        (["usd"], "not an ISO 4217 code"),
        (["EURO"], "not an ISO 4217 code"),
        ([], "at least one"),
    ],
)
def test_currencies_without_two_decimals_are_refused(codes: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(currencies=codes)
