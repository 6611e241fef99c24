"""The notifications service: consumes its own RabbitMQ queue and e-mails customers
(order confirmations, cancellations, shipping notes, renewal reminders) over SMTP.
Uses `storage/` and `jobs/`; nothing here imports `app/`."""
