"""Jobs on RabbitMQ: the broker topology, the outbox consumer that publishes events to
it, and the operator's view (status, dead-letter replay). Uses `storage/` only."""
