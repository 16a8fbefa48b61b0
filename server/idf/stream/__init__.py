"""Streaming telemetry over NATS (issue 16, in progress): subject names (`subjects`), the JetStream
stream of readings created idempotently (`jetstream`), and a private nats-server for the embedded
default (`embedded`). Ingestion, live maps and Watch streams build on these (docs/streaming.md)."""
