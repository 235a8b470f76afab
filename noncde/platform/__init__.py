"""Non-CDE: the durable backbone shared by the API, workers and read models: event store, job
queue, idempotency store, rules store and outbox (see docs/platform.md)."""
