"""Proofs per second for 256x256 fields on SQLite and PostgreSQL, and offline verify time.

    python bench/proof.py [--count 200] [--out results.json]

A real server per store on loopback; sequential CreateProof calls from one client (each one:
decode, 11 metrics with FFTs, sign, one durable append, inclusion proof, signed checkpoint).
PostgreSQL is measured when one answers at postgresql://postgres@127.0.0.1:5432/test (its
proof_leaves table is dropped first). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from report import emit  # noqa: I001 - bench/ is the script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import ServerThread  # noqa: E402

from idf.client import Client  # noqa: E402
from idf.client.proofs import load_public_key, verify_proof  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _measure(store: str, count: int, **settings: object) -> dict[str, object]:
    server = ServerThread(data_dir=Path(tempfile.mkdtemp(prefix="idf-bench-")), **settings)
    rng = np.random.default_rng(0)
    ref = rng.random((256, 256)).astype(np.float32) + 1
    preds = [ref + 0.01 * rng.standard_normal(ref.shape).astype(np.float32) for _ in range(8)]
    try:
        with Client(server.target, max_attempts=1) as c:
            for i in range(5):
                c.create_proof(prediction=preds[i % 8], reference=ref)
            latencies = []
            t0 = time.perf_counter()
            proofs = []
            for i in range(count):
                t = time.perf_counter()
                proofs.append(c.create_proof(prediction=preds[i % 8], reference=ref))
                latencies.append(time.perf_counter() - t)
            elapsed = time.perf_counter() - t0
            key = load_public_key(c.public_key().hex())
        t = time.perf_counter()
        for p in proofs:
            assert verify_proof(p, key).ok
        verify = (time.perf_counter() - t) / len(proofs)
    finally:
        server.stop()
    ms = np.asarray(latencies) * 1e3
    return {
        "store": store,
        "proofs": count,
        "proofs_per_s": count / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "verify_ms": verify * 1e3,
        "log_size_at_end": proofs[-1].raw.checkpoint.tree_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results: dict[str, object] = {
        "benchmark": "proof",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "field": "256x256 float32, policy forecast-default",
        "rows": [_measure("sqlite", args.count)],
    }
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=2) as conn:
            conn.execute("DROP TABLE IF EXISTS proof_leaves")
        results["rows"].append(_measure("postgresql", args.count, database_url=PG_URL))
    except Exception as e:  # noqa: BLE001
        results["postgresql"] = f"not measured: {type(e).__name__}: {e}"
    emit(results, args.out)


if __name__ == "__main__":
    main()
