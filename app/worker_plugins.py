"""Importing this module registers every outbox consumer and worker task."""

from app import cache_consumer, idempotency_purge, relay, search_worker, worker

worker.CONSUMERS.append(cache_consumer.cache_consumer)
worker.CONSUMERS.append(search_worker.search_consumer)

worker.TASKS["outbox-relay"] = relay.run_relay
worker.TASKS["search-reconcile"] = search_worker.reconcile_task
worker.TASKS["idempotency-purge"] = idempotency_purge.run_idempotency_purge
