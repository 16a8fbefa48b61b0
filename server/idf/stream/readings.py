"""A sensor reading as ingestion takes it, checked before it is published (docs/streaming.md).

`check` refuses, with a reason per reading (Publish and the MQTT bridge count them and go on): a
site name not of the form `sites/<token>`, a sensor that is not one token (subjects.token), a
grid index that is empty or negative, a value that is NaN or infinite, a unit longer than 32
characters, a reading id that is not a token, and a measurement time further in the future than
the allowed clock skew; `placed` then finds its site in the reading's tenant and checks the cell
is in the grid. `message_id` is the JetStream `Nats-Msg-Id` that makes a retried reading count
once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from idf.stream import subjects
from idf.stream.maps import Site

T = TypeVar("T")

MAX_UNIT_CHARS = 32
MAX_AXES = 3
QUALITIES = ("good", "uncertain", "bad")
FUTURE_SKEW_S = 300.0  # a measurement may be stamped this far ahead of our clock


@dataclass(frozen=True)
class Reading:
    tenant: str
    site: str  # the site's id (the token after "sites/")
    sensor: str
    index: tuple[int, ...]
    value: float
    measured: float  # seconds since the epoch
    unit: str = ""
    quality: str = "good"
    reading_id: str = ""
    measured_ns: int | None = None  # the exact time, when it came as integer nanoseconds

    @property
    def subject(self) -> str:
        return subjects.reading(self.tenant, self.site, self.sensor)

    @property
    def message_id(self) -> str:
        """The duplicate-window key: tenant, site, sensor and the reading's own id (without one,
        the measurement time stands in, to the nanosecond)."""
        exact = self.measured_ns if self.measured_ns is not None else round(self.measured * 1e9)
        own = self.reading_id or f"t{exact}"  # (float seconds resolve ~240 ns today)
        return f"{self.tenant}/{self.site}/{self.sensor}/{own}"


class Rejected(ValueError):
    """Why one reading was refused (the field and the rule)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def _rule(field: str, check: Callable[..., T], *args: str) -> T:
    """`check(*args)`, its ValueError ("<what> must ...") as Rejected(field, "must ...")."""
    try:
        return check(*args)
    except ValueError as e:
        raise Rejected(field, str(e)[str(e).find("must") :]) from None


def check(
    tenant: str,
    site: str,
    sensor: str,
    index: Sequence[int],
    value: float,
    *,
    now: float,
    measured: float | None = None,
    measured_ns: int | None = None,
    unit: str = "",
    quality: str = "good",
    reading_id: str = "",
) -> Reading:
    """The reading, or `Rejected` naming the first broken rule. The measurement time comes as
    seconds (`measured`) or exact nanoseconds (`measured_ns`); neither means `now`."""
    site_id = _rule("site", subjects.site_id, site)
    _rule("sensor", subjects.token, sensor, "sensor")
    if not 1 <= len(index) <= MAX_AXES or any(i < 0 for i in index):
        raise Rejected(
            "index", f"needs 1 to {MAX_AXES} non-negative integers, got {list(index)[:8]}"
        )
    if not math.isfinite(value):
        raise Rejected("value", f"is {value}: readings are finite numbers")
    if len(unit) > MAX_UNIT_CHARS:
        raise Rejected("unit", f"at most {MAX_UNIT_CHARS} characters")
    if quality not in QUALITIES:
        raise Rejected("quality", f"one of {QUALITIES}")
    if reading_id:
        _rule("reading_id", subjects.token, reading_id, "reading_id")
    if measured_ns is not None:
        measured = measured_ns * 1e-9
    when = now if measured is None else measured
    if not math.isfinite(when) or when > now + FUTURE_SKEW_S:
        raise Rejected(
            "measure_time", f"is more than {FUTURE_SKEW_S:g} s ahead of the server's clock"
        )
    return Reading(tenant, site_id, sensor, tuple(int(i) for i in index), float(value), when, unit, quality,
                   reading_id, measured_ns)  # fmt: skip


def placed(reading: Reading, sites: Mapping[tuple[str, str], Site]) -> Site:
    """The reading's site in its tenant, or Rejected: no such site, or a cell off its grid."""
    site = sites.get((reading.tenant, reading.site))
    if site is None:
        raise Rejected("site", "no such site in the tenant")
    outside = site.outside(reading.index)
    if outside is not None:
        raise Rejected("index", outside)
    return site


BACKWARD_SKEW_S = 300.0  # within one Publish call, a sensor's time may step back this far


class SensorClock:
    """Within one Publish call, each sensor's measurement times must not run backwards by more
    than BACKWARD_SKEW_S (a sensor whose clock jumped, or readings sent out of order by a
    broken client); backfill in time order is fine. Bounded: at most `limit` sensors tracked."""

    def __init__(self, limit: int = 100_000) -> None:
        self.last: dict[tuple[str, str], float] = {}
        self.limit = limit

    def check(self, reading: Reading) -> None:
        key = (reading.site, reading.sensor)
        previous = self.last.get(key)
        if previous is not None and reading.measured < previous - BACKWARD_SKEW_S:
            raise Rejected(
                "measure_time",
                f"is {previous - reading.measured:.0f} s before the same sensor's previous reading "
                f"in this call (at most {BACKWARD_SKEW_S:g} s back)",
            )
        if previous is not None or len(self.last) < self.limit:
            self.last[key] = max(reading.measured, previous or reading.measured)
