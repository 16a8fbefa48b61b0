"""Unary Predict latency and throughput over loopback, against a bare echo RPC of the same
payload measured in the same run (the transport floor).

    python bench/predict_latency.py [--quick] [--out results.json]

Prints one JSON document. The server runs in its own process (bench/echo_server.py), the client
here; both share the machine, so on small machines client and server compete for cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from report import emit  # noqa: I001 - bench/ is the script's folder

from idf.client import predict_request

HERE = Path(__file__).resolve().parent
PREDICT = "/idf.v1.PredictService/Predict"
ECHO = "/idf.bench.Echo/Echo"
SIZES = {64: 400, 128: 400, 256: 200, 1024: 30}  # grid side -> calls measured
MB = 1024 * 1024


def _raw(channel: grpc.Channel, method: str):
    # identity (de)serialisers: both RPCs move the same pre-encoded bytes
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1e3
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)} | {
        "mean_ms": float(ms.mean())
    }


def _latency(call, payload: bytes, n: int) -> list[float]:
    for _ in range(max(3, n // 10)):  # warm-up
        call(payload, timeout=60)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call(payload, timeout=60)
        out.append(time.perf_counter() - t)
    return out


def _throughput(target: str, method: str, payload: bytes, clients: int, seconds: float) -> float:
    """Calls per second with `clients` threads, each on its own channel, for `seconds`."""
    counts = [0] * clients
    stop = time.perf_counter() + seconds
    options = [
        ("grpc.max_send_message_length", 64 * MB),
        ("grpc.max_receive_message_length", 64 * MB),
        ("grpc.use_local_subchannel_pool", 1),
    ]

    def worker(i: int) -> None:
        with grpc.insecure_channel(target, options) as ch:
            call = _raw(ch, method)
            call(payload, timeout=60)
            while time.perf_counter() < stop:
                call(payload, timeout=60)
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0

    server = subprocess.Popen(
        [sys.executable, str(HERE / "echo_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        target = f"127.0.0.1:{port}"
        options = [
            ("grpc.max_send_message_length", 64 * MB),
            ("grpc.max_receive_message_length", 64 * MB),
        ]
        results: dict[str, object] = {
            "benchmark": "predict_latency",
            "date": time.strftime("%Y-%m-%d"),
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "workload": "Predict, physics forecaster, 1 step, float32, diffusivity 0.1; echo returns the request bytes",
            "latency": [],
            "throughput_128": [],
        }
        with grpc.insecure_channel(target, options) as channel:
            predict, echo = _raw(channel, PREDICT), _raw(channel, ECHO)
            rng = np.random.default_rng(0)
            for side, n in SIZES.items():
                n = max(5, int(n * scale))
                field = rng.random((side, side), dtype=np.float32)
                payload = predict_request(field, 1, diffusivity=0.1).SerializeToString()
                p = _percentiles(_latency(predict, payload, n))
                e = _percentiles(_latency(echo, payload, n))
                results["latency"].append(
                    {
                        "grid": f"{side}x{side}",
                        "payload_bytes": len(payload),
                        "calls": n,
                        "predict": p,
                        "echo": e,
                        "p95_ratio_predict_over_echo": p["p95_ms"] / e["p95_ms"],
                    }
                )
            payload = predict_request(
                rng.random((128, 128), dtype=np.float32), 1, diffusivity=0.1
            ).SerializeToString()
            for clients in (1, 4, 16):
                seconds = 3.0 * scale if args.quick else 3.0
                p = _throughput(target, PREDICT, payload, clients, seconds)
                e = _throughput(target, ECHO, payload, clients, seconds)
                results["throughput_128"].append(
                    {
                        "clients": clients,
                        "predict_calls_per_s": p,
                        "echo_calls_per_s": e,
                        "ratio_predict_over_echo": p / e,
                    }
                )
    finally:
        server.terminate()
        server.wait(30)
    emit(results, args.out)


if __name__ == "__main__":
    main()
