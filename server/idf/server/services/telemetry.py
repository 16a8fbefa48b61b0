"""TelemetryService: readings in (Publish, through the JetStream readings stream), maps out
(GetEnergyMap, WatchEnergyMap). A caller sees only its tenant's sites: the site named in a reading
or a map name is looked up under the caller's tenant, so another tenant's site is "no such site".
The rules of a reading are idf.stream.readings; how readings become maps, idf.stream.ingest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor
from typing import Any

import grpc

from idf.server import auth
from idf.server.errors import ApiError, exhausted, invalid_argument
from idf.server.ingest import QUALITY, energy_map, group_message
from idf.server.ratelimit import Buckets
from idf.server.rpc import run_blocking, streaming, unary
from idf.stream import readings, subjects
from idf.stream.ingest import DURABLE
from idf.stream.maps import Site, SiteMap
from idf.stream.runtime import MAX_PENDING_PUBLISHES, StreamRuntime
from idf.v1 import telemetry_pb2, telemetry_pb2_grpc

log = logging.getLogger("idf.telemetry")

MAX_REJECTIONS = 100  # reasons returned per Publish call (all are counted)
PUBLISH_WINDOW = 2048  # stream messages of a call whose acknowledgements are awaited at once
PUBLISH_ACK_S = 10.0  # a reading not acknowledged by the stream within this fails the call
# a watcher also looks at the store this often (a lost notice delays, never loses)
WATCH_POLL_S = 2.0
EVENTS_BEHIND = 1000  # events a watcher may fall behind before it is dropped
GROUP_READINGS = 2000  # readings per stream message (see _parts)
NOTICES_HELD = 4  # map notices (up to 512 KiB each) a watcher's subscription holds; older: dropped
QUALITIES = {number: name for name, number in QUALITY.items()} | {0: "good"}  # unset: good
MAP_SUFFIX = "/energyMap"


def _parts(group: list[Any]) -> list[list[Any]]:
    """One sensor's readings of a message in stream messages of at most GROUP_READINGS: a
    stream message must stay under NATS's payload limit (1 MiB by default; a reading is at most
    ~250 bytes encoded, its strings bounded), whatever the size of the gRPC message."""
    return [group[i : i + GROUP_READINGS] for i in range(0, len(group), GROUP_READINGS)]


def _no_site(site: str) -> ApiError:
    return ApiError(
        grpc.StatusCode.NOT_FOUND,
        f"no site {site!r} in your tenant (sites are configured by the operator: [[sites]])",
        reason="NO_SUCH_SITE",
        metadata={"site": site},
    )


def _stream_down(stored: int) -> ApiError:
    return ApiError(
        grpc.StatusCode.UNAVAILABLE,
        f"the readings stream did not acknowledge every reading (at least {stored} stored): "
        "send the call again; readings with a reading_id are stored once",
        reason="STREAM_UNAVAILABLE",
        retry_after=1.0,
    )


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(
        self,
        executor: Executor,
        sites: Mapping[tuple[str, str], Site],
        runtime: StreamRuntime | None,
        readings_limit: Buckets | None = None,
    ) -> None:
        self.executor, self.sites, self.runtime = executor, sites, runtime
        self.readings_limit = readings_limit  # per tenant (auth on)

    @unary
    async def Publish(
        self, request_iterator: AsyncIterator[telemetry_pb2.PublishRequest], context: Any
    ) -> telemetry_pb2.PublishResponse:
        tenant = auth.current().tenant
        answer = telemetry_pb2.PublishResponse()
        pending: list[tuple[asyncio.Future[Any], int]] = []  # (stream ack, readings in it)
        position, clock, sites = 0, readings.SensorClock(), self._sites()
        try:
            async for message in request_iterator:
                now = time.time()
                groups: dict[str, list[tuple[readings.Reading, telemetry_pb2.SensorReading]]] = {}
                for r in message.readings:
                    try:
                        reading = readings.check(
                            tenant, r.site, r.sensor, r.index, r.value, now=now,
                            measured_ns=r.measure_time.ToNanoseconds() if r.HasField("measure_time") else None,
                            unit=r.unit, quality=QUALITIES.get(r.quality, f"#{r.quality}"),
                            reading_id=r.reading_id,
                        )  # fmt: skip
                        readings.placed(reading, sites)
                        clock.check(reading)  # last: only accepted readings set a sensor's clock
                        groups.setdefault(reading.subject, []).append((reading, r))
                    except readings.Rejected as e:
                        answer.rejected_count += 1
                        if len(answer.rejections) < MAX_REJECTIONS:
                            answer.rejections.add(position=position, field=e.field, reason=e.reason)
                    position += 1
                self._admit_readings(tenant, sum(len(g) for g in groups.values()))
                for subject, group in groups.items():
                    for part in _parts(group):
                        pending.append((await self._send(subject, part, answer), len(part)))
                if len(pending) >= PUBLISH_WINDOW:
                    await _drain(pending, answer)
            await _drain(pending, answer)
            return answer
        finally:
            # a failed or cancelled call: its unanswered publishes stop waiting (nats-py keeps a
            # future, and a slot of the pending limit, per publish until it is answered)
            for future, _ in pending:
                future.cancel()

    def _sites(self) -> Mapping[tuple[str, str], Site]:
        return self.sites if self.runtime is not None else {}

    def _admit_readings(self, tenant: str, accepted: int) -> None:
        """The tenant's readings bucket (auth on): RATE_LIMITED with the delay when empty."""
        if self.readings_limit is None or not accepted:
            return
        wait = self.readings_limit.wait(tenant, accepted)
        if wait > 0:
            raise exhausted(
                "RATE_LIMITED",
                f"your tenant's readings limit ({self.readings_limit.rate:g}/s) is reached:"
                " send the call again after the delay (readings with ids are stored once)",
                retry_after=wait,
            )
        self.readings_limit.take(tenant, accepted)

    async def _send(
        self,
        subject: str,
        part: list[tuple[readings.Reading, telemetry_pb2.SensorReading]],
        answer: telemetry_pb2.PublishResponse,
    ) -> asyncio.Future[Any]:
        """One stream message of one sensor's readings; the future of its acknowledgement."""
        assert self.runtime is not None  # (readings are placed only when it runs)
        js = self.runtime.js
        payload, message_id = group_message(part)
        if js.publish_async_pending() >= MAX_PENDING_PUBLISHES - 1:
            # never wait on nats-py's pending limit (it would wait for ever if NATS is gone):
            # the server has too much unacknowledged; the caller retries
            raise _stream_down(answer.accepted_count)
        try:
            # no stall timeout: wait_for with one yields to the loop on every publish, and NATS
            # then gets one write per message (several times slower); the window keeps a call
            # under the context's pending limit
            return await js.publish_async(subject, payload, headers={"Nats-Msg-Id": message_id})
        except Exception:
            raise _stream_down(answer.accepted_count) from None

    async def _read(self, tenant: str, site: Site) -> tuple[telemetry_pb2.EnergyMap, int]:
        """The map as stored, and the sequence of the last reading folded into it."""
        assert self.runtime is not None
        store = self.runtime.store

        def read() -> tuple[telemetry_pb2.EnergyMap, int]:
            # progress first: the map read after it is at least as new (both only grow), so
            # every reading up to that progress is in it
            through = store.progress(DURABLE)
            stored = store.load(tenant, site.id)
            if stored is None or stored.shape != site.shape:
                state = SiteMap(site.shape, sequence=stored.sequence if stored else 0)
            else:
                state = SiteMap.of(stored)
            out = energy_map(site, state)  # here, off the loop: a sparse site's fill takes time
            out.sequence = max(state.sequence, through)  # every reading up to it is folded in
            return out, state.sequence

        return await run_blocking(self.executor, read)

    def _lookup(self, name: str, field: str, suffix: str = "") -> tuple[str, Site]:
        """The caller's tenant and the site `name` names (NOT_FOUND in another tenant)."""
        try:
            site_id = subjects.site_id(name, suffix)
        except ValueError as e:
            raise invalid_argument(field, str(e)) from None
        tenant = auth.current().tenant
        site = self._sites().get((tenant, site_id))
        if site is None:
            raise _no_site(site_id)
        return tenant, site

    @unary
    async def GetEnergyMap(
        self, request: telemetry_pb2.GetEnergyMapRequest, context: Any
    ) -> telemetry_pb2.GetEnergyMapResponse:
        tenant, site = self._lookup(request.name, "name", MAP_SUFFIX)
        current, _ = await self._read(tenant, site)
        return telemetry_pb2.GetEnergyMapResponse(energy_map=current)

    @streaming
    async def WatchEnergyMap(
        self, request: telemetry_pb2.WatchEnergyMapRequest, context: Any
    ) -> AsyncIterator[telemetry_pb2.WatchEnergyMapResponse]:
        tenant, site = self._lookup(request.name, "name", MAP_SUFFIX)
        if request.after_sequence < 0:
            raise invalid_argument("after_sequence", "must be >= 0")
        assert self.runtime is not None
        changed = asyncio.Event()
        newest: list[telemetry_pb2.EnergyMap] = []  # the latest notice that carried the field

        async def notice(msg: Any) -> None:
            try:
                update = telemetry_pb2.EnergyMap.FromString(msg.data)
            except Exception:
                update = None
            newest[:] = [update] if update is not None and update.HasField("field") else []
            changed.set()  # coalesced: a slow watcher reads the newest map next

        async with _subscribed(
            self.runtime.nc, subjects.map_update(tenant, site.id), cb=notice,
            pending_msgs_limit=NOTICES_HELD, pending_bytes_limit=NOTICES_HELD << 20,
        ):  # fmt: skip
            last, first = request.after_sequence, request.after_sequence == 0
            polled, store = False, self.runtime.store
            while True:
                changed.clear()  # before reading: a change from now on wakes the wait below
                if polled and not newest:  # no notice came: read the map only if it changed
                    own = await run_blocking(self.executor, store.sequence, tenant, site.id)
                    if own <= last:
                        polled = await _wait(changed)
                        continue
                if newest and not first:  # the notice holds the map: no store read
                    current = newest.pop()
                    own = current.sequence  # (the site's own: the worker's progress is not in it)
                else:  # the first map, a notice without the field, or a poll
                    newest.clear()
                    current, own = await self._read(tenant, site)
                # news: the site's own readings past the last map sent (others' readings only
                # raise the reported sequence); an unset after_sequence gets the current map
                if first or own > last:
                    first, last = False, current.sequence
                    yield telemetry_pb2.WatchEnergyMapResponse(energy_map=current)
                polled = await _wait(changed)

    @streaming
    async def WatchEvents(
        self, request: telemetry_pb2.WatchEventsRequest, context: Any
    ) -> AsyncIterator[telemetry_pb2.WatchEventsResponse]:
        tenant, site = self._lookup(request.site, "site")
        assert self.runtime is not None
        queue: asyncio.Queue[bytes] = asyncio.Queue(EVENTS_BEHIND)
        overflowed = False

        async def on_event(msg: Any) -> None:
            nonlocal overflowed
            try:
                queue.put_nowait(msg.data)
            except asyncio.QueueFull:  # this watcher reads slower than events come: drop it
                overflowed = True

        async with _subscribed(self.runtime.nc, subjects.event(tenant, site.id), cb=on_event):
            while True:
                data = await queue.get()  # (a full queue, the only way to overflow, never waits)
                if overflowed:
                    raise exhausted(
                        "SLOW_CONSUMER",
                        f"this watcher fell {EVENTS_BEHIND} events behind and was dropped; "
                        "watch again (events in between are not kept)",
                    )
                event = _site_event(data)
                if event is not None:
                    yield telemetry_pb2.WatchEventsResponse(event=event)


@contextlib.asynccontextmanager
async def _subscribed(nc: Any, subject: str, **options: Any) -> AsyncIterator[None]:
    """A NATS subscription for the length of a watch."""
    sub = await nc.subscribe(subject, **options)
    try:
        yield
    finally:
        try:
            await sub.unsubscribe()
        except Exception:  # the connection is gone: so is the subscription
            pass


async def _drain(
    pending: list[tuple[asyncio.Future[Any], int]], answer: telemetry_pb2.PublishResponse
) -> None:
    """Wait for the pending publishes' acknowledgements and count them in the answer."""
    if not pending:
        return
    try:
        acks = await asyncio.wait_for(asyncio.gather(*(f for f, _ in pending)), PUBLISH_ACK_S)
    except Exception:
        stored = sum(n for f, n in pending if f.done() and not f.cancelled() and not f.exception())
        raise _stream_down(answer.accepted_count + stored) from None
    for ack, (_, count) in zip(acks, pending):
        answer.accepted_count += count
        answer.duplicate_count += count if ack.duplicate else 0
        answer.last_sequence = max(answer.last_sequence, ack.seq)
    pending.clear()


async def _wait(changed: asyncio.Event) -> bool:
    """Wait for a notice, at most WATCH_POLL_S; True when none came (time to look at the store)."""
    try:
        await asyncio.wait_for(changed.wait(), WATCH_POLL_S)
        return False
    except asyncio.TimeoutError:
        return True


def _site_event(data: bytes) -> telemetry_pb2.SiteEvent | None:
    """An event as the worker published it (JSON), in the contract's terms."""
    try:
        body = json.loads(data)
        out = telemetry_pb2.SiteEvent(
            site=str(body.pop("site")), event=str(body.pop("event")),
            rule=int(body.pop("rule")), sequence=int(body.pop("sequence")),
        )  # fmt: skip
        when = float(body.pop("time", 0.0))
        if when:
            out.time.FromNanoseconds(round(when * 1e9))
        out.details.update({k: v for k, v in body.items() if v is not None})
        return out
    except (ValueError, KeyError, TypeError):
        log.warning("an event that does not parse was skipped")
        return None
