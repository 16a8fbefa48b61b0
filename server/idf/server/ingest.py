"""The telemetry wire format — the contract's protobufs on NATS — and the standalone ingest
worker (`python -m idf.server.ingest --config idf.toml`; idf.stream.ingest is the worker itself,
which knows no protobuf).

A stream message holds one sensor's readings of one Publish message as an `idf.v1.PublishRequest`
(each reading's measurement time filled in); its `Nats-Msg-Id` is the reading's own id for a
single reading, else a digest of the readings' ids, so the same readings sent again are stored
once. Map-update notices are `idf.v1.EnergyMap` messages."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence

import numpy as np

from idf.store.maps import MapStore
from idf.stream.ingest import IngestWorker, Row
from idf.stream.maps import Site, SiteMap, filled
from idf.stream.readings import Reading
from idf.v1 import field_pb2, telemetry_pb2

log = logging.getLogger("idf.stream.ingest")

QUALITY = {
    "good": telemetry_pb2.READING_QUALITY_GOOD,
    "uncertain": telemetry_pb2.READING_QUALITY_UNCERTAIN,
    "bad": telemetry_pb2.READING_QUALITY_BAD,
}


def reading_message(r: Reading) -> telemetry_pb2.SensorReading:
    """A checked reading as the contract's message (its time is group_message's to fill)."""
    return telemetry_pb2.SensorReading(
        site=f"sites/{r.site}", sensor=r.sensor, index=list(r.index), value=r.value,
        unit=r.unit, quality=QUALITY[r.quality], reading_id=r.reading_id,
    )  # fmt: skip


def group_message(
    group: Sequence[tuple[Reading, telemetry_pb2.SensorReading]],
) -> tuple[bytes, str]:
    """One sensor's accepted readings of one Publish message: the payload and its Nats-Msg-Id."""
    out = telemetry_pb2.PublishRequest()
    for reading, message in group:
        stored = out.readings.add()
        stored.CopyFrom(message)
        if not message.HasField("measure_time"):  # stamped on receipt, or from a bridge
            stored.measure_time.FromNanoseconds(round(reading.measured * 1e9))
    first = group[0][0]
    if len(group) == 1:
        return out.SerializeToString(), first.message_id
    digest = hashlib.sha256("\n".join(r.message_id for r, _ in group).encode()).hexdigest()
    return out.SerializeToString(), f"{first.tenant}/{first.site}/{first.sensor}/g{digest[:40]}"


def energy_map(site: Site, state: SiteMap, *, with_field: bool = True) -> telemetry_pb2.EnergyMap:
    """The map as the contract says it: NaN where no reading arrived, unless the site fills
    those cells (`Site.fill`); `observed_count` says how many cells hold readings."""
    out = telemetry_pb2.EnergyMap(
        name=f"sites/{site.id}/energyMap",
        reading_count=state.reading_count,
        sequence=state.sequence,
        observed_count=state.observed_count,
    )
    if with_field:
        out.field.CopyFrom(
            field_pb2.Field(
                shape=list(state.shape),
                dtype=field_pb2.DTYPE_FLOAT64,
                data=np.ascontiguousarray(
                    filled(state.values, site.fill, site.spacing), dtype="<f8"
                ).tobytes(),
                spacing=list(site.spacing),
                units=site.units,
            )
        )
    if state.updated:
        out.update_time.FromNanoseconds(round(state.updated * 1e9))
    return out


class ProtobufCodec:
    """idf.stream.ingest.Codec over the contract's messages."""

    def readings(self, data: bytes) -> list[Row] | None:
        group = telemetry_pb2.PublishRequest.FromString(data)
        out: list[Row] = []
        for r in group.readings:
            t = r.measure_time
            measured = t.seconds + t.nanos * 1e-9 if r.HasField("measure_time") else None
            out.append((tuple(r.index), r.value, measured, r.quality == QUALITY["bad"]))
        return out

    def update(self, site: Site, state: SiteMap, with_field: bool) -> bytes:
        return energy_map(site, state, with_field=with_field).SerializeToString()

    def message(self, readings: list[Reading]) -> bytes:
        return group_message([(r, reading_message(r)) for r in readings])[0]


async def _main(config: str | None) -> None:
    import signal

    from idf.server.config import Settings
    from idf.stream.runtime import connect

    settings = Settings.load(config)
    if settings.nats_url is None:
        raise SystemExit("an external ingest worker needs nats_url (the server's NATS)")
    sites = settings.telemetry_sites()
    nc = await connect(settings.nats_url, "idf-ingest")
    store = MapStore(settings.store_url())
    worker = IngestWorker(nc, store, sites, ProtobufCodec(), batch=settings.ingest_batch)
    task = asyncio.create_task(worker.run())  # takes the lead (or stands by), then ingests
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    log.info("ingest worker started", extra={"sites": len(sites)})
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await nc.close()
        store.close()


if __name__ == "__main__":  # python -m idf.server.ingest [--config idf.toml]
    import argparse

    parser = argparse.ArgumentParser(description="The ingest worker (docs/streaming.md).")
    parser.add_argument("--config", help="the server's TOML config (default: IDF_CONFIG)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_main(args.config))
