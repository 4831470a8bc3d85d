"""The pure domain: aggregates, their events and errors, one module per bounded context.

No Kafka, no HTTP, no SQL: the eventsourcing Application classes here are the
command entry points, and persistence is chosen by the env they are given.
"""
