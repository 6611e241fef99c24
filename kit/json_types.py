"""Field types whose validation matches what their JSON Schema says."""

from __future__ import annotations

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def _no_bool_or_text(value: object) -> object:
    """JSON Schema's integer is 3 or 3.0, never true or "3"; pydantic's lax int takes all
    four and its strict int refuses 3.0, so neither agrees with the schema alone."""
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Last in `Annotated[int, Field(ge=..., le=...), JSON_INTEGER]`: the int keeps its bounds
# (documented as minimum/maximum; put before them, pydantic documents `ge`/`le`), and
# validation accepts exactly the JSON values {"type": "integer"} admits.
JSON_INTEGER = BeforeValidator(_no_bool_or_text)

# Text bound for Postgres, which cannot store NUL (a 500 otherwise): any string without
# one, and the same but not blank (a non-space somewhere). Anchored, for both engines.
TEXT_PATTERN = r"^[^\x00]*$"
NOT_BLANK_TEXT_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
