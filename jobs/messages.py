"""The message format shared by the publisher and the notifications service."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

CONTENT_TYPE = "application/json"


class BadMessage(ValueError):
    """A message that can never be processed (poison): it ends in the dead letters."""


@dataclass(frozen=True)
class JobMessage:
    event_id: int
    event_type: str
    aggregate: str
    aggregate_id: int
    version: int
    occurred_at: str
    namespace: str  # the schema whose outbox numbered the event: ids are unique in it
    data: dict[str, Any]

    def encode(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":"), default=str).encode()

    @classmethod
    def decode(cls, body: bytes) -> JobMessage:
        try:
            raw = json.loads(body)
            return cls(
                event_id=int(raw["event_id"]),
                event_type=str(raw["event_type"]),
                aggregate=str(raw["aggregate"]),
                aggregate_id=int(raw["aggregate_id"]),
                version=int(raw["version"]),
                occurred_at=str(raw["occurred_at"]),
                namespace=str(raw["namespace"]),
                data=dict(raw["data"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadMessage(f"not a job message: {exc}") from exc


def iso(value: datetime) -> str:
    return value.isoformat()
