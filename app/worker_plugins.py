"""Importing this module registers every outbox consumer and worker task."""

from app import (
    cache_consumer,
    etl_schedule,
    idempotency_purge,
    jobs,
    relay,
    search_worker,
    worker,
)
from app.images import gc as image_gc
from app.images import renditions_worker as image_renditions

worker.CONSUMERS.append(cache_consumer.cache_consumer)
worker.CONSUMERS.append(search_worker.search_consumer)
worker.CONSUMERS.append(jobs.jobs_consumer)  # publishes to RabbitMQ

worker.TASKS["outbox-relay"] = relay.run_relay
worker.TASKS["search-reconcile"] = search_worker.reconcile_task
worker.TASKS["image-gc"] = image_gc.run_image_gc
worker.TASKS["image-renditions"] = image_renditions.run_renditions
worker.TASKS["idempotency-purge"] = idempotency_purge.run_idempotency_purge
worker.TASKS["etl-schedule"] = etl_schedule.etl_schedule_task
worker.TASKS["memberships"] = jobs.run_membership_sweeps
