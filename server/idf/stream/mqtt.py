"""The MQTT bridge (docs/streaming.md): devices publish readings to an MQTT broker; the bridge
subscribes to configured topic patterns, maps each topic to a site and a sensor, and publishes
the reading into the readings stream — QoS 1 end to end: the device's message is acknowledged to
the broker (PUBACK) only after JetStream has stored the reading, and the bridge keeps a persistent
session (clean_session off, a fixed client id), so the broker holds what arrives while the bridge
is down and sends again what was not acknowledged.

A topic pattern names its parts with `{site}` and `{sensor}` (e.g. `plant/{site}/{sensor}`;
each becomes a `+` wildcard). The payload is JSON:
`{"value": 21.5, "index": [3, 4], "time": 1700000000.5, "id": "r-1", "unit": "K", "quality": "good"}`
(`time`: seconds since the epoch or RFC 3339, unset: on receipt; `id`, `unit`, `quality`
optional). A payload that is not such JSON, or a reading the rules refuse (idf.stream.readings,
an unknown site, a cell outside the grid), is counted by reason and parked on the dead-letter
subject `idf.deadletter.<tenant>.mqtt` with the reason and the topic in its headers, then
acknowledged (sending it again would not mend it).

The paho client under aiomqtt acknowledges manually (`manual_ack_set`): aiomqtt has no API for it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from idf.stream import readings, subjects
from idf.stream.maps import Site

log = logging.getLogger("idf.stream.mqtt")
LEVELS = ("{site}", "{sensor}")  # the parts of a topic pattern that vary
RECONNECT_S = (0.5, 10.0)  # back-off after a lost broker: first wait, longest wait
STORE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Route:
    """One bridge: a broker, a topic pattern, the tenant its sites belong to."""

    topic: str  # with {site} and {sensor}
    tenant: str = "default"
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "idf-bridge"
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        parts = self.topic.split("/")
        if parts.count("{site}") != 1 or parts.count("{sensor}") != 1:
            raise ValueError(
                f"mqtt topic {self.topic!r} needs one {{site}} and one {{sensor}} level"
            )
        if any(p in ("+", "#") or "{" in p and p not in LEVELS for p in parts):
            raise ValueError(f"mqtt topic {self.topic!r}: only {{site}} and {{sensor}} may vary")
        subjects.token(self.tenant, "mqtt tenant")

    @property
    def subscription(self) -> str:
        return "/".join("+" if p in LEVELS else p for p in self.topic.split("/"))

    def parse(self, topic: str) -> tuple[str, str] | None:
        """(site, sensor) of a topic that matches the pattern, else None."""
        parts, want = topic.split("/"), self.topic.split("/")
        if len(parts) != len(want):
            return None
        got = {}
        for p, w in zip(parts, want):
            if w in LEVELS:
                got[w] = p
            elif p != w:
                return None
        return got["{site}"], got["{sensor}"]


@dataclass
class BridgeCounters:
    stored: int = 0
    duplicates: int = 0
    parked: dict[str, int] = field(default_factory=dict)  # reason -> messages
    reconnects: int = 0


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("time: seconds since the epoch or RFC 3339")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    raise ValueError("time: seconds since the epoch or RFC 3339")


def decode(route: Route, topic: str, payload: bytes, now: float) -> readings.Reading:
    """The reading a device's message carries, or `readings.Rejected` with the field and rule."""
    where = route.parse(topic)
    if where is None:
        raise readings.Rejected("topic", f"does not match {route.topic}")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise readings.Rejected("payload", "is not JSON") from None
    if not isinstance(body, dict):
        raise readings.Rejected("payload", "must be a JSON object")
    value, index = body.get("value"), body.get("index")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise readings.Rejected("value", "must be a number")
    if not isinstance(index, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in index
    ):
        raise readings.Rejected("index", "must be a list of integers")
    try:
        measured = _time(body.get("time"))
    except (ValueError, OverflowError) as e:
        raise readings.Rejected("time", str(e).partition(": ")[2] or "not a time") from None
    text = {k: body.get(k, d) for k, d in (("id", ""), ("unit", ""), ("quality", "good"))}
    if not all(isinstance(v, str) for v in text.values()):
        raise readings.Rejected("payload", "id, unit and quality are strings")
    return readings.check(
        route.tenant, f"sites/{where[0]}", where[1], index, float(value), measured=measured,
        now=now, unit=text["unit"], quality=text["quality"], reading_id=text["id"],
    )  # fmt: skip


class MqttBridge:
    def __init__(
        self,
        route: Route,
        js: Any,
        nc: Any,
        sites: Mapping[tuple[str, str], Site],
        encode: Callable[[list[readings.Reading]], bytes],
    ) -> None:
        self.route, self.js, self.nc, self.sites, self.encode = route, js, nc, sites, encode
        self.counters = BridgeCounters()
        self.subscribed = False  # to the broker, now

    async def _park(self, topic: str, payload: bytes, error: readings.Rejected) -> None:
        reason = f"{error.field}: {error.reason}"
        self.counters.parked[reason] = self.counters.parked.get(reason, 0) + 1
        try:
            await self.nc.publish(
                subjects.dead_letter(self.route.tenant, "mqtt"), payload,
                headers={"Idf-Reason": reason[:500], "Idf-Topic": topic[:500]},
            )  # fmt: skip
        except Exception:
            log.warning("parking a refused MQTT message failed", exc_info=True)

    async def handle(self, topic: str, payload: bytes) -> None:
        """Store one device message (or park it); returns once it may be acknowledged. Raises
        when the stream did not store it (the message must not be acknowledged)."""
        try:
            reading = decode(self.route, topic, payload, time.time())
            readings.placed(reading, self.sites)
        except readings.Rejected as e:
            await self._park(topic, payload, e)
            return
        ack = await self.js.publish(
            reading.subject, self.encode([reading]),
            headers={"Nats-Msg-Id": reading.message_id}, timeout=STORE_TIMEOUT_S,
        )  # fmt: skip
        self.counters.stored += 1
        self.counters.duplicates += bool(ack.duplicate)

    async def run(self) -> None:
        """Subscribe and bridge until cancelled; reconnects to the broker with back-off."""
        import aiomqtt

        wait = RECONNECT_S[0]
        while True:
            client = aiomqtt.Client(
                self.route.host, self.route.port, identifier=self.route.client_id,
                clean_session=False, username=self.route.username, password=self.route.password,
            )  # fmt: skip
            client._client.manual_ack_set(True)  # noqa: SLF001 - acknowledged once stored
            try:
                async with client:
                    await client.subscribe(self.route.subscription, qos=1)
                    self.subscribed = True
                    log.info("bridging", extra={"topic": self.route.subscription})
                    wait = RECONNECT_S[0]
                    async for message in client.messages:
                        try:
                            await self.handle(str(message.topic), bytes(message.payload))
                        except Exception:  # not stored: no ack, the broker sends it again
                            log.warning("storing an MQTT reading failed", exc_info=True)
                            raise
                        if message.qos > 0:
                            client._client.ack(message.mid, message.qos)  # noqa: SLF001
            except asyncio.CancelledError:
                raise
            except Exception:
                self.subscribed = False
                self.counters.reconnects += 1
                log.warning("MQTT bridge disconnected; reconnecting", extra={"wait_s": wait},
                            exc_info=True)  # fmt: skip
                await asyncio.sleep(wait)
                wait = min(wait * 2, RECONNECT_S[1])
