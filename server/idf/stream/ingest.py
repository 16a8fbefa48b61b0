"""The ingest worker: readings from the JetStream stream into sites' maps (docs/streaming.md).

A durable pull consumer (`idf-ingest`) takes readings in batches, in stream order;
each batch is folded into its sites' maps (idf.stream.maps), the touched maps are written in one
transaction with the worker's progress (the sequence through which every reading is applied,
idf.store.maps), a map update is published on `idf.maps.<tenant>.<site>`, and only then are the
batch's messages acknowledged. A failed write is retried (with back-off) before anything newer is
fetched. At start-up the consumer is recreated to deliver from just past the stored progress, so
readings are applied in stream order even after a crash (JetStream would otherwise deliver new
readings before the unacknowledged ones, once their ack wait expires); a reading delivered again
(a crash between the commit and the acks) is skipped by its sequence number. So every stored
reading is applied exactly once.

Readings the worker cannot apply (a site no longer configured, a cell outside a grid that
shrank, a payload that does not parse) are acknowledged with the batch and counted by reason
(`Counters.dropped`), never retried; bad-quality readings likewise, without folding. The consumer
acknowledges cumulatively (AckPolicy.ALL): one ack, of the batch's newest reading, per batch.

One worker per deployment (it owns the consumer and applies batches in order); `run` is an
asyncio task in `idf serve`, or its own process (`python -m idf.server.ingest`). The messages'
wire format is the server's (`Codec`; this layer knows no protobuf).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import numpy as np
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from idf.store.maps import MapStore, ProgressMoved
from idf.stream import rules, subjects
from idf.stream.jetstream import READINGS_STREAM, ensure_readings_stream
from idf.stream.maps import Site, SiteMap, filled
from idf.stream.readings import Reading

log = logging.getLogger("idf.stream.ingest")

DURABLE = "idf-ingest"
BATCH = 4096  # stream messages per fetch (Settings.ingest_batch)
DRAIN_WAIT_S = 0.005  # a fetch of what is there returns within this
IDLE_WAIT_S = 1.0  # an idle worker asks again this often
LEAD_RETRY_S = 2.0  # a standing-by worker asks for the lead this often
ACK_WAIT_S = 30.0  # a batch not acknowledged within this is delivered again
MAX_ACK_PENDING = 4 * BATCH
# map updates carry the field up to 64 Ki cells (512 KiB), else only the counts
PUBLISH_FIELD_CELLS = 1 << 16

Blocking = Callable[..., Awaitable[Any]]
# (tenant, site) -> the batch's rows for it: (stream sequence, grid index, value, measured)
Pending = dict[tuple[str, str], list[tuple[int, tuple[int, ...], float, float]]]


def consumer_config(through: int = 0) -> ConsumerConfig:
    """The consumer, delivering from just past `through` (the stored progress)."""
    return ConsumerConfig(
        durable_name=DURABLE,
        ack_policy=AckPolicy.ALL,  # one ack per batch: its newest reading acknowledges the rest
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if through else DeliverPolicy.ALL,
        opt_start_seq=through + 1 if through else None,
        ack_wait=ACK_WAIT_S,
        max_ack_pending=MAX_ACK_PENDING,
        filter_subject=f"{subjects.TELEMETRY}.>",
    )


# One reading as the worker folds it: grid index, value, measurement time (seconds since the
# epoch; None: the reading is malformed), and whether its quality is bad (kept, not folded).
Row = tuple[tuple[int, ...], float, Optional[float], bool]


class Codec(Protocol):
    """The wire format of the stream's messages (idf.server.ingest: the contract's protobufs;
    this layer knows none)."""

    def readings(self, data: bytes) -> list[Row] | None:
        """The readings of one stream message, in order (None: it does not parse)."""

    def update(self, site: Site, state: SiteMap, with_field: bool) -> bytes:
        """The map-update notice published on idf.maps.<tenant>.<site>."""

    def message(self, readings: list[Reading]) -> bytes:
        """One sensor's readings as one stream message (the bridges' path in)."""


@dataclass
class Counters:
    applied: int = 0  # readings folded into a map
    skipped: int = 0  # delivered again, already in the map
    bad_quality: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> readings terminated
    batches: int = 0


class IngestWorker:
    def __init__(
        self,
        nc: NATS,
        store: MapStore,
        sites: Mapping[tuple[str, str], Site],
        codec: Codec,
        *,
        batch: int = BATCH,
        blocking: Blocking = asyncio.to_thread,
    ) -> None:
        self.nc, self.js = nc, nc.jetstream()
        self.store, self.sites, self.batch, self.blocking = store, sites, batch, blocking
        self.codec = codec
        self.maps: dict[tuple[str, str], SiteMap] = {}
        self.counters = Counters()
        self.through = 0  # every reading at or below this sequence is applied and committed
        self.rule_state: dict[tuple[str, str], rules.RuleState] = {}
        self.events = 0  # published
        self._sub: Any = None
        self._delivered = 0
        self._resync = False

    async def start(self) -> None:
        """(Re)create the consumer from just past the stored progress."""
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
            self._sub = None
        await ensure_readings_stream(self.js)
        self.through = await self.blocking(self.store.progress, DURABLE)
        state = (await self.js.stream_info(READINGS_STREAM)).state
        if state.last_seq < self.through:  # the stream was recreated (or its store lost)
            log.error(
                "the readings stream is behind this worker's progress: it was recreated; "
                "applying it from its start",
                extra={"stream_last": state.last_seq, "progress": self.through},
            )
            await self.blocking(self.store.restart, DURABLE, self.through)
            self.through = 0
            self.maps.clear()
        elif state.first_seq > self.through + 1 and state.messages:
            log.error(  # retention dropped readings before they were applied
                "readings were discarded by the stream's retention before they were applied",
                extra={"first_kept": state.first_seq, "progress": self.through},
            )
        try:  # resume in stream order just past what is applied (see the module's docstring)
            await self.js.delete_consumer(READINGS_STREAM, DURABLE)
        except NotFoundError:
            pass
        config = consumer_config(self.through)
        self._sub = await self.js.pull_subscribe(
            config.filter_subject or "", durable=DURABLE, stream=READINGS_STREAM, config=config
        )
        self._delivered = 0  # the consumer's delivery sequence of the last message taken
        self._resync = False

    async def run(self) -> None:
        """Fetch, apply, acknowledge, until cancelled."""
        if self._sub is None:
            await self._lead()
            await self.start()
        reconnects = self.nc.stats["reconnects"]
        while True:
            if self.nc.stats["reconnects"] != reconnects or self._resync:
                # a fetch answer lost with the connection leaves readings "delivered" that we never
                # got, which JetStream would send again only after newer ones: resume in order
                try:
                    await self.start()
                    reconnects = self.nc.stats["reconnects"]
                except Exception:
                    log.warning("resuming the readings consumer failed; retrying", exc_info=True)
                    await asyncio.sleep(0.5)
                    continue
            try:
                msgs = await self._next()
            except (NatsTimeout, asyncio.TimeoutError):  # nothing to read within the second
                continue
            except asyncio.CancelledError:
                raise
            except Exception:  # NATS down, or the consumer or stream gone: start over in order
                log.warning("fetching readings failed; resuming", exc_info=True)
                self._resync = True
                await asyncio.sleep(0.5)
                continue
            await self.apply(self._contiguous(msgs))

    async def _lead(self) -> None:
        """Wait until this worker is the deployment's one ingest worker (idf.store.maps.lead):
        a second one (another replica's inline worker, an external one started twice) stands by
        and takes over when the first one's store connection or process ends."""
        told = False
        while not await self.blocking(self.store.lead, DURABLE):
            if not told:
                log.info("another ingest worker is applying readings; standing by")
                told = True
            await asyncio.sleep(LEAD_RETRY_S)
        if told:
            log.info("this ingest worker now applies readings")

    def _contiguous(self, msgs: list[Msg]) -> list[Msg]:
        """The messages up to the first gap in the consumer's delivery sequence. A gap means a
        delivery we never got (dropped on its way to us): JetStream would redeliver it only
        after its ack wait, behind newer readings, so the batch stops there and the consumer is
        recreated from the stored progress (in order again)."""
        for i, msg in enumerate(msgs):
            delivered = msg.metadata.sequence.consumer
            if delivered != self._delivered + 1:  # a new consumer's first delivery is 1
                log.warning("a gap in the readings delivered; resuming in order",
                            extra={"expected": self._delivered + 1, "got": delivered})  # fmt: skip
                self._resync = True
                return msgs[:i]
            self._delivered = delivered
        return msgs

    async def _events(self, tenant: str, site: Site, state: SiteMap) -> None:
        """The site's rules on its new map; their events, as JSON, on idf.events.<tenant>.<site>."""
        memory = self.rule_state.setdefault((tenant, site.id), rules.RuleState())
        try:
            found = await self.blocking(
                rules.evaluate, site.rules, memory, state.values, state.times
            )
        except Exception:  # a rule that fails never holds the readings back
            log.exception("evaluating a site's rules failed")
            return
        for event in found:
            body = {"site": f"sites/{site.id}", "sequence": state.sequence,
                    "time": state.updated, **event}  # fmt: skip
            try:
                await self.nc.publish(subjects.event(tenant, site.id), json.dumps(body).encode())
                self.events += 1
            except Exception:
                log.warning("publishing an event failed", exc_info=True)

    async def _next(self) -> list[Msg]:
        """The readings there are now (up to a batch); when there are none, wait up to a second
        for the next one. (nats-py's fetch of a batch, once waiting, holds the messages until
        the batch is full or its timeout ends: a 1 s timeout meant up to 1 s of latency.)"""
        try:
            return list(await self._sub.fetch(self.batch, timeout=DRAIN_WAIT_S))
        except (NatsTimeout, asyncio.TimeoutError):
            return list(await self._sub.fetch(1, timeout=IDLE_WAIT_S))

    def _state(self, key: tuple[str, str], site: Site) -> SiteMap:
        state = self.maps.get(key)
        if state is None:
            stored = self.store.load(*key)
            state = SiteMap.of(stored) if stored is not None else SiteMap(site.shape)
            if state.shape != site.shape:  # the site's grid was reconfigured: a new map
                log.warning(
                    "site grid changed; its map starts afresh",
                    extra={"site": key[1], "old": list(state.shape), "new": list(site.shape)},
                )
                state = SiteMap(site.shape, sequence=state.sequence)
            self.maps[key] = state
        return state

    def _drop(self, reason: str, readings: int = 1) -> None:
        self.counters.dropped[reason] = self.counters.dropped.get(reason, 0) + readings

    def _fold(self, groups: Pending) -> tuple[list[tuple[str, str, SiteMap]], int]:
        """Fold the batch into the sites' states (loaded from the store when not cached); the
        states that changed and how many readings were new."""
        touched, applied, now = [], 0, time.time()
        for key, rows in groups.items():
            site = self.sites[key]
            state = self._state(key, site)
            sequences = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            index = np.array([r[1] for r in rows], dtype=np.int64).reshape(len(rows), -1)
            cells = np.ravel_multi_index(tuple(index.T), site.shape)
            values = np.fromiter((r[2] for r in rows), np.float64, len(rows))
            measured = np.fromiter((r[3] for r in rows), np.float64, len(rows))
            if any(isinstance(r, rules.Regime) for r in site.rules):  # frames before the fold
                self._frames(key, site, state, sequences, cells, values, measured)
            new = state.fold(sequences, cells, values, measured, now)
            applied += new
            if new:
                touched.append((key[0], key[1], state))
        return touched, applied

    def _frames(self, key: tuple[str, str], site: Site, state: SiteMap, sequences: np.ndarray,
                cells: np.ndarray, values: np.ndarray, measured: np.ndarray) -> None:  # fmt: skip
        """The regime rules' frames of the ticks the batch's new readings pass (a failure loses
        the site's windows, never the readings)."""
        memory = self.rule_state.setdefault(key, rules.RuleState())
        fresh = sequences > state.sequence
        try:
            rules.take(site.rules, memory, state.values, state.times,
                       (cells[fresh], values[fresh], measured[fresh]),
                       functools.partial(filled, how=site.fill, spacing=site.spacing))  # fmt: skip
        except Exception:
            log.exception("taking a site's regime frames failed; its windows start afresh")
            memory.frames.clear()

    def _commit(self, groups: Pending, through: int) -> tuple[list[tuple[str, str, SiteMap]], int]:
        try:
            touched, applied = self._fold(groups)
            self.store.save(touched, DURABLE, through, self.through)
        except BaseException:
            for key in groups:  # the cached states may hold unsaved readings: reload them
                self.maps.pop(key, None)
            raise
        return touched, applied

    async def apply(self, msgs: list[Msg]) -> None:
        """Fold one batch into its maps, commit, publish the updates, acknowledge."""
        if not msgs:
            return
        groups: Pending = {}
        through, newest = self.through, None
        for msg in msgs:
            sequence = msg.metadata.sequence.stream
            if sequence > through:
                through, newest = sequence, msg
            if sequence <= self.through:  # delivered again: applied already
                self.counters.skipped += 1
                continue
            parts = msg.subject.split(".")
            key = (parts[2], parts[3]) if len(parts) == 5 else ("", "")
            site = self.sites.get(key)
            try:
                group = self.codec.readings(msg.data)
            except Exception:
                group = None
            if not group:
                self._drop("malformed")
                continue
            if site is None:
                self._drop("unknown site", len(group))
                continue
            for index, value, measured, bad in group:
                if measured is None:
                    self._drop("malformed")
                elif site.outside(index) is not None:
                    self._drop("outside grid")
                elif bad:
                    self.counters.bad_quality += 1
                else:
                    groups.setdefault(key, []).append((sequence, index, value, measured))
        delay = 0.1
        while True:  # nothing newer is fetched until this batch is committed
            try:
                touched, applied = await self.blocking(self._commit, groups, through)
                break
            except asyncio.CancelledError:
                raise
            except ProgressMoved:  # another worker applied readings: start over from its progress
                log.error("the ingest progress moved under this worker; resuming from the store")
                self.maps.clear()
                self._resync = True
                return
            except Exception:
                log.exception("committing a batch of readings failed; retrying")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.through = through
        self.counters.applied += applied
        self.counters.batches += 1
        for tenant, site_id, state in touched:
            site = self.sites[(tenant, site_id)]
            update = await self.blocking(  # (a fill of a sparse site's map takes a while)
                self.codec.update, site, state, int(np.prod(site.shape)) <= PUBLISH_FIELD_CELLS
            )
            if site.rules:
                await self._events(tenant, site, state)
            try:
                await self.nc.publish(subjects.map_update(tenant, site_id), update)
            except Exception:  # watchers also poll; a lost notice delays them, loses nothing
                log.warning("publishing a map update failed", exc_info=True)
        # acknowledges every reading of the batch (AckPolicy.ALL); a batch of redeliveries only
        # is acknowledged too, or it would come back every ack wait
        await _quietly((newest or msgs[-1]).ack())


async def _quietly(call: Awaitable[Any]) -> None:
    """An acknowledgement that does not reach NATS (it is down) leaves the reading to be
    delivered again, which the sequence check skips."""
    try:
        await call
    except Exception:
        pass
