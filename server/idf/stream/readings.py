"""A sensor reading as ingestion takes it, checked before it is published (docs/streaming.md).

`check` refuses, with a reason per reading (Publish counts them and ingestion goes on): a site
name not of the form `sites/<token>`, a sensor that is not one token (subjects.token), a grid
index that is empty or negative, a value that is NaN or infinite, a unit longer than 32
characters, a reading id that is not a token, and a measurement time further in the future than
the allowed clock skew. Cells outside a site's grid are the ingest worker's to refuse (it knows
the grid). `message_id` is the JetStream `Nats-Msg-Id` that makes a retried reading count once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from idf.stream import subjects

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


def check(
    tenant: str,
    site: str,
    sensor: str,
    index: Sequence[int],
    value: float,
    *,
    measured: float | None,
    now: float,
    unit: str = "",
    quality: str = "good",
    reading_id: str = "",
    measured_ns: int | None = None,
) -> Reading:
    """The reading, or `Rejected` naming the first broken rule; `measured` None means `now`."""  # fmt: skip
    prefix, _, site_id = site.partition("/")
    if prefix != "sites" or not site_id:
        raise Rejected("site", "must look like sites/{site_id}")
    for field, value_ in (("site", site_id), ("sensor", sensor)):
        try:
            subjects.token(value_, field)
        except ValueError as e:
            raise Rejected(field, str(e).partition(" ")[2]) from None
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
        try:
            subjects.token(reading_id, "reading_id")
        except ValueError as e:
            raise Rejected("reading_id", str(e).partition(" ")[2]) from None
    when = now if measured is None else measured
    if not math.isfinite(when) or when > now + FUTURE_SKEW_S:
        raise Rejected(
            "measure_time", f"is more than {FUTURE_SKEW_S:g} s ahead of the server's clock"
        )
    return Reading(tenant, site_id, sensor, tuple(int(i) for i in index), float(value), when, unit, quality,
                   reading_id, measured_ns if measured is not None else None)  # fmt: skip


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
