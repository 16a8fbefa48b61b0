"""The JetStream stream of readings: file storage, retention limits, and a duplicate window keyed
by `Nats-Msg-Id` (a reading's idempotent id), so a retried publish is stored once.

`ensure_readings_stream` creates it, or brings an existing one to this configuration (same
subjects, storage, limits), and is safe to call at every start-up and from several replicas at
once: creating a stream that exists with the same configuration is not an error, and a changed
one is updated in place (JetStream keeps the stored messages)."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from idf.stream import subjects

READINGS_STREAM = "IDF_TELEMETRY"


@dataclass(frozen=True)
class Retention:
    max_age_s: float = 7 * 86400  # readings older than this are dropped
    max_bytes: int = 8 << 30  # and the oldest ones past this size
    duplicate_window_s: float = 120.0  # a Nats-Msg-Id seen within this is not stored again


def readings_config(retention: Retention = Retention()) -> StreamConfig:
    return StreamConfig(
        name=READINGS_STREAM,
        subjects=[f"{subjects.TELEMETRY}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=retention.max_age_s,
        max_bytes=retention.max_bytes,
        duplicate_window=retention.duplicate_window_s,
    )


async def ensure_readings_stream(
    js: JetStreamContext, retention: Retention = Retention()
) -> StreamConfig:
    """The readings stream, created or updated to `retention`; its configuration as stored."""
    config = readings_config(retention)
    try:
        existing = await js.stream_info(READINGS_STREAM)
        # an operator's replication (R3 on a cluster) is theirs: keep it
        config.num_replicas = existing.config.num_replicas
    except NotFoundError:
        try:
            return (await js.add_stream(config)).config
        except BadRequestError:  # another replica created it meanwhile: fall through to update
            pass
    return (await js.update_stream(config)).config
