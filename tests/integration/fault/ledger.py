"""What the fault suite keeps across its tests: acknowledged writes, and the recovery
times of each fault (a row of the terminal summary, tests/support/summary.py).
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

    def summary_row(self) -> tuple[str, str, str]:
        """(section, header, row) of the terminal summary's table."""
        header = (
            f"{'fault':<16} {'service back':>12} {'API recovered':>13} {'converged':>9}"
            "  answers during the fault (non-2xx)"
        )
        row = (
            f"{self.fault:<16} {self.service_back_s:>11.1f}s {self.api_recovered_s:>12.1f}s"
            f" {self.converged_s:>8.1f}s  {self.during}"
        )
        return "fault injection: time to recover (from the restart command)", header, row


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
