"""Cheap calls while the engine is saturated: do health, catalogue, market and proof calls still
answer fast when every engine worker is busy and the queue is full?

    python bench/starvation.py [--calls 200] [--out results.json]

One real server on loopback (`idf serve` in a child process, default settings except
`max_queued_calls`). Phase 1 (baseline): the cheap calls with an idle engine. Phase 2: as many
long Predict calls as there are workers plus a full queue, then the same cheap calls. Reports
p50 / p95 / max latency of each phase and their ratio, and how engine calls past the queue were
answered (RESOURCE_EXHAUSTED with RetryInfo, and how fast). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
from report import emit  # noqa: I001 - bench/ is the script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import ServerProcess  # noqa: E402

from idf.client import Client, IdfError  # noqa: E402
from idf.v1 import diffusion_pb2, market_pb2, proof_pb2  # noqa: E402

WORKERS, QUEUE = 2, 2


def _cheap(c: Client) -> dict[str, object]:
    return {
        "health": lambda: c.health(),
        "ListModels": lambda: c.list_models(),
        "ListEnergyModels": lambda: c.call(
            c.diffusion_stub.ListEnergyModels, diffusion_pb2.ListEnergyModelsRequest()
        ),
        "GetPool": lambda: c.call(
            c.market_stub.GetPool, market_pb2.GetPoolRequest(name="market/pools/ceu-pft")
        ),
        "ListPolicies": lambda: c.call(c.proof_stub.ListPolicies, proof_pb2.ListPoliciesRequest()),
        "GetCheckpoint": lambda: c.call(
            c.proof_stub.GetCheckpoint, proof_pb2.GetCheckpointRequest()
        ),
    }


def _latencies(target: str, calls: int) -> dict[str, dict[str, float]]:
    out = {}
    with Client(target, max_attempts=1, timeout=30) as c:
        for name, fn in _cheap(c).items():
            fn()  # warm
            times = []
            for _ in range(calls):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
            a = np.array(times)
            out[name] = {
                "p50_ms": round(float(np.percentile(a, 50)), 3),
                "p95_ms": round(float(np.percentile(a, 95)), 3),
                "max_ms": round(float(a.max()), 3),
            }
    return out


def _long(target: str, i: int) -> None:
    with Client(
        target,
        max_attempts=1,
        timeout=120,
        metadata=[("x-idf-account", f"market/accounts/load{i}")],
    ) as c:
        try:
            c.predict(np.ones((256, 256), np.float32), 4, substeps=50_000, diffusivity=0.1)
        except IdfError:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    server = ServerProcess(
        env={
            "IDF_WORKERS": str(WORKERS),
            "IDF_MAX_QUEUED_CALLS": str(QUEUE),
            "IDF_DEFAULT_DEADLINE": "60",
        }
    )
    try:
        idle = _latencies(server.target, args.calls)
        load = [
            threading.Thread(target=_long, args=(server.target, i), daemon=True)
            for i in range(WORKERS + QUEUE)
        ]
        for t in load:
            t.start()
        time.sleep(3)  # every worker busy, the queue full
        refused = []
        with Client(server.target, max_attempts=1, timeout=30) as c:
            for _ in range(20):
                t = time.perf_counter()
                try:
                    c.predict(np.ones((8, 8), np.float32), 1, diffusivity=0.1)
                    refused.append(("OK", 0.0, None))
                except IdfError as e:
                    refused.append((e.code.name, (time.perf_counter() - t) * 1e3, e.retry_after))
        busy = _latencies(server.target, args.calls)
        server.terminate()
        server.wait(60)
    finally:
        server.kill()
    ratio = {k: round(busy[k]["p95_ms"] / idle[k]["p95_ms"], 2) for k in idle}
    refusal_ms = [r[1] for r in refused if r[0] == "RESOURCE_EXHAUSTED"]
    emit(
        {
            "benchmark": "starvation",
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}",
            "date": time.strftime("%Y-%m-%d"),
            "settings": {
                "workers": WORKERS,
                "max_queued_calls": QUEUE,
                "calls_per_rpc": args.calls,
                "load": f"{WORKERS + QUEUE} Predicts of 256^2 x 4 frames x 50000 substeps",
            },
            "idle": idle,
            "saturated": busy,
            "p95_ratio_saturated_over_idle": ratio,
            "engine_calls_past_the_queue": {
                "codes": sorted({r[0] for r in refused}),
                "retry_after_s": sorted({r[2] for r in refused if r[2] is not None}),
                "refusal_p95_ms": round(float(np.percentile(refusal_ms, 95)), 3)
                if refusal_ms
                else None,
            },
        },
        args.out,
    )


if __name__ == "__main__":
    main()
