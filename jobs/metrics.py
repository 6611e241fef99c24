"""Prometheus metrics of the jobs: the publisher's live in the worker process, the
consumer's in each notifications service process (each serves its own /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter("polyshop_jobs_published_total", "Messages sent to the broker", ["event_type"])
CONFIRMED = Counter(
    "polyshop_jobs_confirmed_total", "Messages the broker confirmed (publisher confirms)"
)
PUBLISH_FAILED = Counter(
    "polyshop_jobs_publish_failed_total", "Publish batches that failed (retried by the relay)"
)
CONSUMED = Counter("polyshop_notifications_consumed_total", "Messages received", ["event_type"])
SENT = Counter("polyshop_notifications_sent_total", "E-mails accepted by the SMTP server")
FAILED = Counter(
    "polyshop_notifications_failed_total", "Deliveries that failed", ["reason"]
)  # refused (permanent), transient (retried), poison (bad message)
DEAD_LETTERED = Counter(
    "polyshop_notifications_dead_lettered_total", "Messages rejected to the dead letters"
)
DUPLICATES = Counter(
    "polyshop_notifications_duplicates_skipped_total",
    "Redelivered messages whose e-mail was already recorded (not sent again)",
)
QUEUE_DEPTH = Gauge("polyshop_jobs_queue_depth", "Messages ready in a queue", ["queue"])
REMINDER_LAG = Gauge(
    "polyshop_jobs_reminder_lag_seconds",
    "How late the oldest reminder of the last sweep was moved to the outbox",
)
DUE_REMINDERS = Gauge("polyshop_jobs_due_reminders", "Reminders due and not yet enqueued")
RECORD_WINDOW_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
RECORD_WINDOW = Histogram(
    "polyshop_notifications_record_window_seconds",
    "From the SMTP server's 250 to the broker ack: the window in which a crash sends twice",
    buckets=RECORD_WINDOW_BUCKETS,
)
