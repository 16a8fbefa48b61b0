"""Streaming telemetry end to end (issue 16): readings/s from publish until the map that holds
them is visible to a watcher, and map-update latency at a steady rate, against a raw nats-py
publish/subscribe loop measured in the same run.

    python bench/streaming.py [--readings 100000] [--rate 10000] [--seconds 5] [--out results.json]

- raw: one nats-py client publishes `readings` small messages (core NATS) to a subscriber in the
  same process; readings/s until the subscriber has them all. The ceiling of Python + NATS here.
- core: readings published with core NATS (no acknowledgement, as a device or the MQTT bridge
  would) straight onto the readings subjects, one reading per message and 50 per message; readings/s
  until a watcher (WatchEnergyMap, gRPC) sees a map holding all of them (its reading count).
- jetstream: readings through the Publish RPC (each stored and acknowledged by JetStream before
  the call answers), 1,000 per stream message; readings/s until a watcher sees
  `sequence >= last_sequence`.
- latency: Publish calls of `rate`/100 readings every 10 ms for `seconds`; each call includes a
  "clock" sensor whose value is the send time, so a watcher computes, for every map it receives,
  now - send time of the newest clock reading in it: p50/p95 map-update latency.

Everything runs on this machine — nats-server, `idf serve` (its own process, with its inline
ingest worker), and the bench's clients; on 2 cores they compete for the CPU, which the figures
include.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import ServerProcess  # noqa: E402
from report import emit  # noqa: E402

from idf.client import Client, Reading  # noqa: E402
from idf.stream.embedded import EmbeddedNats  # noqa: E402
from idf.v1 import telemetry_pb2  # noqa: E402

SHAPE = (64, 64)
SITE, MAP = "sites/bench", "sites/bench/energyMap"


async def _raw(url: str, n: int) -> float:
    nc = await nats.connect(url)
    got = asyncio.Event()
    count = 0

    async def on(_: object) -> None:
        nonlocal count
        count += 1
        if count == n:
            got.set()

    await nc.subscribe("bench.raw", cb=on, pending_msgs_limit=n + 1)
    await nc.flush()
    payload = b"x" * 64
    start = time.perf_counter()
    for _ in range(n):
        await nc.publish("bench.raw", payload)
    await got.wait()
    elapsed = time.perf_counter() - start
    await nc.close()
    return n / elapsed


def _payload(k: int, per_message: int, t: float) -> bytes:
    message = telemetry_pb2.PublishRequest()
    for j in range(per_message):
        i = k + j
        r = message.readings.add(
            site=SITE, sensor=f"s{i % 256}", index=[(i % 256) // 64 * 16, (i % 256) % 64],
            value=float(i), reading_id=f"c{i}",
        )  # fmt: skip
        r.measure_time.FromNanoseconds(round(t * 1e9) + i)
    return message.SerializeToString()


async def _core_publish(url: str, n: int, per_message: int) -> float:
    """Publish n readings with core NATS; returns the start time."""
    nc = await nats.connect(url)
    payloads = [(i, _payload(i, per_message, time.time())) for i in range(0, n, per_message)]
    start = time.perf_counter()
    for i, p in payloads:
        sensor = f"s{i % 256}" if per_message == 1 else "s0"
        await nc.publish(f"idf.telemetry.default.bench.{sensor}", p)
    await nc.flush()
    await nc.close()
    return start


def _watch_until(client: Client, done: "callable", start_box: list[float]) -> float:  # type: ignore[valid-type]
    for m in client.watch_energy_map(MAP, timeout=600):
        if done(m):
            return time.perf_counter() - start_box[0]
    raise RuntimeError("watch ended")


def _core(url: str, client: Client, n: int, per_message: int) -> float:
    base = client.get_energy_map(MAP).reading_count
    start: list[float] = []
    result: list[float] = []
    ready = threading.Event()

    def watcher() -> None:
        ready.set()
        result.append(_watch_until(client, lambda m: m.reading_count >= base + n, start))

    t = threading.Thread(target=watcher)
    t.start()
    ready.wait()
    start.append(asyncio.run(_core_publish(url, n, per_message)))
    t.join()
    return n / result[0]


def _jetstream(client: Client, n: int) -> float:
    t0 = time.time()
    readings = [Reading(SITE, f"j{i % 256}", ((i % 256) // 64 * 16 + 1, (i % 256) % 64),
                        float(i), measured=t0 + i * 1e-6, reading_id=f"j{i}") for i in range(n)]  # fmt: skip
    start = time.perf_counter()
    out = client.publish(readings, batch=1000)
    for m in client.watch_energy_map(MAP, timeout=600):
        if m.sequence >= out.last_sequence:
            return n / (time.perf_counter() - start)
    raise RuntimeError("watch ended")


def _latency(client: Client, watcher: Client, rate: float, seconds: float) -> dict[str, float]:
    per_call = max(1, round(rate / 100))
    latencies: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        last = None
        for m in watcher.watch_energy_map(MAP, timeout=600):
            sent = float(m.field[63, 63])
            if sent == sent and sent != last:  # not NaN, and a newer clock reading
                latencies.append(time.time() - sent)
                last = sent
            if stop.is_set():
                return

    t = threading.Thread(target=watch)
    t.start()
    sent_total, start = 0, time.perf_counter()
    tick = 0
    while time.perf_counter() - start < seconds:
        now = time.time()
        batch = [Reading(SITE, f"l{j % 256}", ((j % 256) // 64 * 16 + 2, (j % 256) % 64),
                         float(j), measured=now, reading_id=f"l{tick}-{j}") for j in range(per_call - 1)]  # fmt: skip
        batch.append(Reading(SITE, "clock", (63, 63), now, measured=now, reading_id=f"clock{tick}"))
        client.publish(batch, batch=1000)
        sent_total += len(batch)
        tick += 1
        time.sleep(max(0.0, tick * 0.01 - (time.perf_counter() - start)))
    elapsed = time.perf_counter() - start
    time.sleep(0.5)
    stop.set()
    client.publish([Reading(SITE, "clock", (63, 63), time.time(), reading_id="clock-end")])
    t.join(30)
    latencies.sort()
    return {
        "offered_readings_per_s": rate,
        "achieved_readings_per_s": round(sent_total / elapsed, 1),
        "maps_seen": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1e3, 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="idf-bench-"))
    server_nats = EmbeddedNats(folder / "nats")
    # the server in its own process, as deployed (in this one it would share the GIL with the
    # bench's clients)
    server = ServerProcess(env={
        "IDF_DATA_DIR": str(folder / "data"), "IDF_NATS_URL": server_nats.url,
        "IDF_SITES": json.dumps([{"id": "bench", "shape": list(SHAPE)}]),
    })  # fmt: skip
    try:
        with Client(server.target, max_attempts=1) as c, Client(server.target, max_attempts=1) as w:
            _jetstream(c, 2000)  # warm-up
            raw = asyncio.run(_raw(server_nats.url, args.readings))
            core_1 = _core(server_nats.url, c, args.readings // 4, 1)
            core_50 = _core(server_nats.url, c, args.readings, 50)
            durable = _jetstream(c, args.readings)
            latency = _latency(c, w, args.rate, args.seconds)
    finally:
        server.terminate()
        server.wait()
        server_nats.stop()
    emit(
        {
            "benchmark": "streaming",
            "site_shape": list(SHAPE),
            "readings": args.readings,
            "raw_nats_pubsub_per_s": round(raw, 1),
            "core_nats_1_per_message_per_s": round(core_1, 1),
            "core_nats_50_per_message_per_s": round(core_50, 1),
            "publish_rpc_jetstream_per_s": round(durable, 1),
            "ratio_core_50_to_raw": round(core_50 / raw, 3),
            "ratio_jetstream_to_raw": round(durable / raw, 3),
            "latency": latency,
            "goals": {"core_per_s": 50_000, "jetstream_per_s": 20_000, "p95_ms_at_10k_per_s": 50},
        },
        args.out,
    )


if __name__ == "__main__":
    main()
