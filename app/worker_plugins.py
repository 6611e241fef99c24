"""Importing this module registers every outbox consumer and worker task.
Each feature area adds one import line here."""
