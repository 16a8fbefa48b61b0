"""What a server (or a standalone worker) holds for telemetry: the NATS connection (to `nats_url`,
or to a private nats-server it starts in the data directory), the readings stream, the map store
and, when it runs inline, the ingest worker's task. `stop` undoes all of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nats

from idf.store.maps import MapStore
from idf.stream.embedded import EmbeddedNats
from idf.stream.ingest import BATCH, Codec, IngestWorker
from idf.stream.jetstream import ensure_readings_stream
from idf.stream.maps import Site
from idf.stream.mqtt import MqttBridge, Route

log = logging.getLogger("idf.stream")
MAX_PENDING_PUBLISHES = 1 << 16


async def connect(url: str, name: str) -> Any:
    """A NATS client that reconnects for ever (a restarted nats-server is found again)."""
    return await nats.connect(
        servers=[u.strip() for u in url.split(",") if u.strip()],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
        connect_timeout=5,
    )


class StreamRuntime:
    def __init__(self, nc: Any, store: MapStore, sites: Mapping[tuple[str, str], Site]) -> None:
        # Publish calls share this context's limit of unacknowledged publishes (32 full windows)
        self.nc, self.store, self.sites = nc, store, sites
        self.js = nc.jetstream(publish_async_max_pending=MAX_PENDING_PUBLISHES)
        self.embedded: EmbeddedNats | None = None
        self.worker: IngestWorker | None = None
        self.task: asyncio.Task[None] | None = None
        self.bridges: list[MqttBridge] = []
        self.bridge_tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        sites: Mapping[tuple[str, str], Site],
        store_url: str,
        *,
        nats_url: str | None,
        data_dir: Path,
        inline: bool,
        codec: Codec,
        mqtt: Sequence[Route] = (),
        batch: int = BATCH,
    ) -> StreamRuntime:
        embedded = None
        if nats_url is None:
            # on the loop's thread: a server that dies takes its nats-server along
            embedded = EmbeddedNats(data_dir / "nats", die_with_parent=True)
            nats_url = embedded.url
            log.info("started a private nats-server", extra={"url": nats_url})
        try:
            nc = await connect(nats_url, "idf-server")
        except BaseException:
            if embedded is not None:
                embedded.stop()
            raise
        store = MapStore(store_url)
        runtime = cls(nc, store, sites)
        runtime.embedded = embedded
        try:
            await ensure_readings_stream(runtime.js)
            if inline:
                runtime.worker = IngestWorker(nc, store, sites, codec, batch=batch)
                # it takes the lead (or stands by) and starts its consumer in its task
                runtime.task = asyncio.create_task(runtime.worker.run(), name="idf-ingest")
            for route in mqtt:
                bridge = MqttBridge(route, runtime.js, nc, sites, codec.message)
                runtime.bridges.append(bridge)
                runtime.bridge_tasks.append(
                    asyncio.create_task(bridge.run(), name=f"idf-mqtt-{route.client_id}")
                )
        except BaseException:
            await runtime.stop()
            raise
        return runtime

    async def stop(self) -> None:
        for task in [*self.bridge_tasks, *([self.task] if self.task else [])]:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("a telemetry task had failed", extra={"task": task.get_name()})
        try:  # what is published is flushed; the subscriptions need no draining
            await self.nc.flush(timeout=2)
        except Exception:
            pass
        await self.nc.close()
        self.store.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
