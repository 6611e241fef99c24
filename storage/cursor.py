"""The one codec of opaque pagination cursors (products, orders, search): base64url of
a small JSON object naming what the cursor pages through (a listing, or a search's
sort order) and the last row's key values. A cursor for another listing, or anything
that does not decode to the expected number of plain values, is InvalidCursor."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

Value = int | float | str | None


class InvalidCursor(ValueError):
    """Not a cursor this API produced for this listing."""


def encode_cursor(kind: str, values: Sequence[Value]) -> str:
    raw = json.dumps({"s": kind, "a": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, arity: int) -> list[Value]:
    """The key values of `cursor` (exactly `arity` of them, each a JSON scalar; a bool is
    no number here). The caller still checks their types and ranges."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not isinstance(data, dict) or data.get("s") != kind:
        raise InvalidCursor("cursor was made for another listing or sort order")
    values = data.get("a")
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(
            v is None or (isinstance(v, int | float | str) and not isinstance(v, bool))
            for v in values
        )
    ):
        raise InvalidCursor("cursor is not valid")
    return values
