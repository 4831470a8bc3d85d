"""Processes that consume or produce Kafka: the outbox relay, saga participants, projections."""
