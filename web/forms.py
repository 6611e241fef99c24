"""Form fields to domain values, with the message for the field that is wrong.

The same limits as the JSON API's schemas (app/schemas/products.py), kept here because
web/ does not import app/; an error goes next to its field, never a 500.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from storage.money import to_minor

PRICE = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
STATUSES = ("active", "draft", "archived")


def product_changes(form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The product columns the edit form sets, and the errors by field name."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}

    def text(name: str, low: int, high: int) -> None:
        value = str(form.get(name) or "").strip()
        if "\x00" in value:
            errors[name] = "must not contain NUL characters"
        elif not low <= len(value) <= high:
            errors[name] = f"{low} to {high} characters" if low else f"at most {high} characters"
        else:
            values[name] = value

    text("sku", 1, 64)
    text("name", 1, 300)
    text("brand", 0, 200)
    text("category", 0, 300)
    text("description", 0, 10_000)
    price = str(form.get("price") or "").strip()
    if PRICE.match(price):
        values["price_minor"] = to_minor(price)
    else:
        errors["price"] = "a price such as 19.99 (at most 2 decimals)"
    stock = str(form.get("stock") or "").strip()
    if stock.isdigit() and int(stock) <= 1_000_000_000:
        values["stock"] = int(stock)
    else:
        errors["stock"] = "a whole number from 0"
    status = str(form.get("status") or "")
    if status in STATUSES:
        values["status"] = status
    else:
        errors["status"] = f"one of {', '.join(STATUSES)}"
    return values, errors


def errors_by_field(exc: ValidationError) -> dict[str, str]:
    """The API's problem+json `errors[]` (field, message) mapped back to the form's
    fields: the same schema validates both, so a page shows what the API would say."""
    errors: dict[str, str] = {}
    for e in exc.errors():
        field = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        errors.setdefault(field, str(e.get("msg", "invalid")).removeprefix("Value error, "))
    return errors
