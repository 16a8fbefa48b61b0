"""Rate limits per principal and per tenant: token buckets of requests and of engine work.

With authentication on, every call takes one token from its principal's request bucket and one
from its tenant's; an engine call also takes its stencil-equivalent work (`Cost.work`) from the
principal's work bucket and its tenant's (the tenant's quota) before it reserves or queues. An empty bucket answers RESOURCE_EXHAUSTED
(`RATE_LIMITED`) with a RetryInfo saying when the tokens will be there (HTTP 429 with Retry-After
on the REST face); nothing is taken from a bucket by a refused call. Other principals are not
affected: each has its own buckets. A work bucket holds at least one call's ceiling
(`max_call_site_updates`), so any call the server accepts can pass an idle bucket.

With authentication off (loopback only) there are no principals to tell apart, and no limits
here (the admission queue's per-caller bound still holds).

Hand-written (40 lines) rather than a library: the buckets live in this process next to the
admission queue, need no store, and the two libraries we looked at (`limits`, `aiolimiter`)
either want a storage backend or do not report the wait a RetryInfo needs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from idf.server.errors import ApiError, exhausted

MAX_BUCKETS = 100_000  # least recently used buckets are dropped past this (a full bucket again)


class Buckets:
    """Token buckets by key: `rate` tokens per second, up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("a bucket needs a positive rate and burst")
        self.rate, self.burst = rate, burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def wait(self, key: str, n: float = 1.0, now: float | None = None) -> float:
        """Seconds until `n` tokens are in `key`'s bucket (0: they are now). Takes nothing."""
        now = time.monotonic() if now is None else now
        with self._lock:
            missing = min(n, self.burst) - self._level(key, now)
        return max(0.0, missing / self.rate)

    def take(self, key: str, n: float = 1.0, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._buckets[key] = (self._level(key, now) - n, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)


class RateLimiter:
    def __init__(
        self,
        requests: tuple[float, float],
        tenant_requests: tuple[float, float],
        work: tuple[float, float],
        tenant_work: tuple[float, float],
    ) -> None:
        """Each a (rate per second, burst): calls per principal and per tenant, engine work
        (stencil-equivalent site updates) per principal and per tenant."""
        self.requests = Buckets(*requests)
        self.tenant_requests = Buckets(*tenant_requests)
        self.work = Buckets(*work)
        self.tenant_work = Buckets(*tenant_work)

    def admit_call(self, principal: str, tenant: str) -> None:
        """One request of `principal` of `tenant`, or RATE_LIMITED (nothing taken then)."""
        self._admit("request rate", "/s", [("this caller", self.requests, principal, 1.0),
                                           ("this tenant", self.tenant_requests, tenant, 1.0)])  # fmt: skip

    def admit_work(self, principal: str, site_updates: int, tenant: str) -> None:
        """An engine call of `site_updates` stencil-equivalent work, or RATE_LIMITED (by the
        principal's bucket, or by its tenant's: the tenant's quota)."""
        self._admit("engine work rate", " site updates/s",
                    [("this caller", self.work, principal, site_updates),
                     ("this tenant", self.tenant_work, tenant, site_updates)])  # fmt: skip

    @staticmethod
    def _admit(what: str, unit: str, draws: list[tuple[str, Buckets, str, float]]) -> None:
        """Take from every bucket, or from none: RATE_LIMITED with the longest wait, naming the
        bucket that needs it (the caller's on a tie)."""
        wait, who, buckets = max(
            ((b.wait(k, n), who, b) for who, b, k, n in draws), key=lambda w: w[0]
        )
        if wait:
            raise _limited(f"{who} is over its {what} ({buckets.rate:.3g}{unit})", wait)
        for _, b, k, n in draws:
            b.take(k, n)


def _limited(message: str, wait: float) -> ApiError:
    return exhausted(
        "RATE_LIMITED", message + "; retry after the delay given", retry_after=max(wait, 0.001)
    )
