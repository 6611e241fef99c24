"""Importing this module registers every outbox consumer and worker task."""

from app import cache_consumer, relay, worker

worker.TASKS["outbox-relay"] = relay.run_relay
worker.CONSUMERS.append(cache_consumer.cache_consumer)
