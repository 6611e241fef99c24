"""Memberships: a customer's paid plan with a renewal date, the reminder sent before it
(scheduled in Postgres, swept into the outbox by the worker) and the renewal job that
advances the period. No card is charged: renewing only moves the dates. Uses `storage/`
only; the app wires the router and the worker task."""
