"""What the fault suite keeps across its tests: acknowledged writes and recovery times.
(Not in conftest.py: pytest may import a conftest under another module name.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.mixed_workload import Acknowledged


@dataclass(frozen=True)
class Recovery:
    fault: str
    service_back_s: float  # restart command until the service itself is ready
    api_recovered_s: float  # restart command until requests through nginx succeed again
    converged_s: float  # restart command until every derived store equals Postgres
    during: str  # what the requests during the fault got, e.g. "search 503 x4"


@dataclass
class Ledger:
    """Every write acknowledged during the whole suite (all faults)."""

    orders: dict[str, int] = field(default_factory=dict)
    order_conflicts: list[str] = field(default_factory=list)
    patches: dict[int, int] = field(default_factory=dict)
    images: dict[int, int] = field(default_factory=dict)
    unresolved_orders: set[str] = field(default_factory=set)

    def merge(self, acks: Acknowledged) -> None:
        for key, order_id in acks.orders.items():
            if key in self.orders and self.orders[key] != order_id:
                self.order_conflicts.append(f"{key}: {self.orders[key]} then {order_id}")
            self.orders[key] = order_id
        self.order_conflicts.extend(acks.order_conflicts)
        for product_id, version in acks.patches.items():
            self.patches[product_id] = max(version, self.patches.get(product_id, 0))
        self.images.update(acks.images)
        self.unresolved_orders |= acks.order_unknown


RECOVERIES: list[Recovery] = []
