"""Admission control for engine work: the work model of docs/api.md.

Every engine call states its cost before it starts — site updates (sites x steps x substeps x
chains x replicas) and the bytes of its working set — and is admitted or refused here:

- a call whose cost is past the per-call ceilings (`max_call_site_updates`, `max_call_bytes`) is
  refused with RESOURCE_EXHAUSTED and no RetryInfo: asking again will not help, asking for less
  will (the message says the limit and what was asked);
- the engine runs at most `workers` calls at once; at most `max_queued_calls` more wait for a
  worker, and one caller (its account, else its peer address) holds at most
  `max_calls_per_caller` running-or-waiting calls; past either bound the call is refused with
  RESOURCE_EXHAUSTED and a RetryInfo (transient: retry after the delay);
- every engine call runs under a server-side deadline: the client's, capped at `default_deadline`
  (which also applies when the client set none). At the deadline, or when the client cancels, or
  at shutdown, the engine's `should_stop` turns true and the engine stops at its next check;
- a worker is counted busy until its thread has really finished — a cancelled call whose engine
  is still winding down keeps its slot, so the next call never queues invisibly behind it.

Cheap RPCs (health, catalogue, market, proofs) never come here: they run on their own thread pool
(`Running.io_executor`) and never wait behind engine work.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from idf.server import memory
from idf.server.config import Settings
from idf.server.errors import ApiError, exhausted

T = TypeVar("T")


GATEWAY_HEADER = "x-idf-gateway"  # the REST face's per-process secret: proves the next header
FORWARDED_HEADER = "x-idf-forwarded-for"  # the HTTP client's address, set by the REST face
CLIENT_CN_HEADER = "x-idf-client-cn"  # its verified client certificate's CN (mTLS on REST)


def _peer_host(context: grpc.aio.ServicerContext) -> str:
    peer = context.peer() or "unknown"
    host, _, _port = peer.rpartition(":")  # "ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1"
    return host or peer


class Admission:
    def __init__(
        self,
        settings: Settings,
        executor: Executor,
        *,
        capacity: int | None = None,
        queue: int | None = None,
        per_caller: int | None = None,
        gateway_secret: str = "",
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.capacity = capacity or settings.workers
        self.queue = settings.max_queued_calls if queue is None else queue
        self.max_per_caller = per_caller or settings.max_calls_per_caller
        self.gateway_secret = gateway_secret
        self.busy = 0  # calls holding a worker (until their thread finishes)
        self.waiting = 0
        self.per_caller: Counter[str] = Counter()
        self.stops: set[threading.Event] = set()
        self.seconds = 1.0  # running mean of engine call durations, for RetryInfo
        self._slots = asyncio.Semaphore(self.capacity)

    def caller(self, context: grpc.aio.ServicerContext) -> str:
        """Who a call is counted against: its peer host — for calls relayed by this server's REST
        face (which proves itself with the per-process gateway secret), the HTTP client's address.
        Never the free `x-idf-account` header (one caller could name a new account per call); a
        principal once identities exist (issue 15)."""
        if self.gateway_secret:
            metadata = dict(context.invocation_metadata() or ())
            if hmac.compare_digest(
                metadata.get(GATEWAY_HEADER, ""), self.gateway_secret
            ) and metadata.get(FORWARDED_HEADER):
                return "http:" + metadata[FORWARDED_HEADER][:64]
        return _peer_host(context)

    async def call(
        self,
        context: grpc.aio.ServicerContext,
        cost: tuple[int, int],
        field: str,
        fn: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """The whole path of one admitted call: ceilings, then `run` for this call's caller under
        its deadline."""
        self.check_cost(*cost, field)
        return await self.run(self.caller(context), self.deadline(context), fn, *args, **kwargs)

    # -- ceilings -----------------------------------------------------------------------------
    def check_cost(self, site_updates: int, state_bytes: int, field: str = "request") -> None:
        """Refuse work past the per-call ceilings (permanent: no RetryInfo)."""
        s = self.settings
        if site_updates > s.max_call_site_updates:
            raise exhausted(
                "WORK_LIMIT",
                f"this call needs {site_updates:.3g} site updates; one call may do at most "
                f"{s.max_call_site_updates:.3g}: ask for fewer steps, substeps, chains or sites, or split the work",
                violations=[
                    (
                        field,
                        f"{site_updates} site updates exceed the per-call limit {s.max_call_site_updates}",
                    )
                ],
                metadata={"limit": str(s.max_call_site_updates), "requested": str(site_updates)},
            )
        if state_bytes > s.max_call_bytes:
            raise exhausted(
                "MEMORY_LIMIT",
                f"this call needs about {state_bytes / 2**20:.0f} MiB of working memory; one call may use at most "
                f"{s.max_call_bytes / 2**20:.0f} MiB: ask for fewer chains or a smaller grid",
                violations=[
                    (
                        field,
                        f"{state_bytes} bytes of state exceed the per-call limit {s.max_call_bytes}",
                    )
                ],
                metadata={"limit": str(s.max_call_bytes), "requested": str(state_bytes)},
            )

    def deadline(self, context: grpc.aio.ServicerContext) -> float:
        """Seconds this call may still run: the client's deadline capped at the server's."""
        remaining = context.time_remaining()
        cap = self.settings.default_deadline
        return cap if remaining is None else max(0.0, min(remaining, cap))

    # -- running -----------------------------------------------------------------------------
    async def run(
        self, caller: str, timeout: float, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Wait for a worker (bounded queue, per-caller bound), then run `fn(*args, should_stop=...,
        **kwargs)` on it under `timeout` seconds. DEADLINE_EXCEEDED at the timeout; the engine is
        told to stop on timeout, cancellation and shutdown."""
        start = time.monotonic()
        if self.per_caller[caller] >= self.max_per_caller:
            raise exhausted(
                "CALLER_LIMIT",
                f"this caller already has {self.per_caller[caller]} engine calls running or "
                f"queued (the limit is {self.max_per_caller}); retry when one finishes",
                retry_after=self.retry_after(),
            )
        if self.busy >= self.capacity and self.waiting >= self.queue:
            raise exhausted(
                "QUEUE_FULL",
                f"the engine is busy ({self.busy} calls running, {self.waiting} waiting, "
                f"queue limit {self.queue}); retry later",
                retry_after=self.retry_after(),
            )
        self.per_caller[caller] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.per_caller[caller] -= 1
                if self.per_caller[caller] <= 0:
                    del self.per_caller[caller]

        holding = False

        async def acquire() -> None:  # waiting -> busy in one step: no moment counts a call twice
            nonlocal holding
            await self._slots.acquire()
            self.waiting -= 1
            self.busy += 1
            holding = True

        self.waiting += 1
        try:
            await asyncio.wait_for(acquire(), timeout)
        except BaseException as e:
            if holding:  # cancelled after the worker was taken: give it back
                self.busy -= 1
                self._slots.release()
            else:
                self.waiting -= 1
            release()
            if isinstance(e, asyncio.TimeoutError):
                raise _deadline_error(timeout, "waiting for a worker") from None
            raise
        stop = threading.Event()
        self.stops.add(stop)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.executor, functools.partial(fn, *args, should_stop=stop.is_set, **kwargs)
        )

        def finished(done: Any) -> None:  # the thread is free again: only now release the worker
            if not done.cancelled():
                done.exception()  # retrieved here: a call that was cancelled may never read it
            self.stops.discard(stop)
            release()
            self.seconds = 0.8 * self.seconds + 0.2 * (time.monotonic() - start)
            self.busy -= 1
            self._slots.release()
            loop.run_in_executor(None, memory.trim)

        future.add_done_callback(finished)
        left = max(0.0, timeout - (time.monotonic() - start))
        try:
            return await asyncio.wait_for(asyncio.shield(future), left)
        except asyncio.TimeoutError:
            stop.set()
            raise _deadline_error(timeout, "running") from None
        except asyncio.CancelledError:
            stop.set()
            raise

    def retry_after(self) -> float:
        """A hint for RetryInfo: about one engine call's duration, at least a second."""
        return float(min(60.0, max(1.0, math.ceil(self.seconds))))

    def stop_all(self) -> int:
        """Tell every running engine call to stop (shutdown past the grace period)."""
        for stop in list(self.stops):
            stop.set()
        return len(self.stops)


def _deadline_error(timeout: float, where: str) -> ApiError:
    return ApiError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"the call passed its deadline of {timeout:.3g} s while {where} (the server caps every engine call "
        "at default_deadline); ask for less work per call",
        reason="DEADLINE",
    )
