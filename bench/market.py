"""Sustained swaps per second and latency on SQLite and PostgreSQL.

    python bench/market.py [--seconds 10] [--clients 1 8] [--out results.json]

A real server per store on loopback, a funded pool, then exact-in swaps of random sizes and
directions from N client threads for a fixed time. Every swap is one serialised, durable ledger
transaction. PostgreSQL is measured when one answers at postgresql://postgres@127.0.0.1:5432/test
(its market tables are dropped first). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from google.protobuf import timestamp_pb2
from report import emit  # noqa: I001 - bench/ is the script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import ServerThread  # noqa: E402

from idf.client import Client  # noqa: E402
from idf.v1 import market_pb2 as m  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
POOL = "market/pools/ceu-pft"
ADMIN = (("authorization", "Bearer bench"),)


def _deadline() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns() + 60 * 10**9)
    return ts


def _measure(store: str, clients: int, seconds: float, **settings: object) -> dict[str, object]:
    server = ServerThread(
        data_dir=Path(tempfile.mkdtemp(prefix="idf-bench-")), admin_token="bench", **settings
    )
    try:
        with Client(server.target, max_attempts=1) as c:
            for token in (m.TOKEN_CEU, m.TOKEN_PFT):
                c.market_stub.Mint(
                    m.MintRequest(
                        account="market/accounts/lp",
                        amount=m.TokenAmount(token=token, amount=10**15),
                        request_id=f"lp{token}",
                    ),
                    metadata=ADMIN,
                )
            c.call(
                c.market_stub.AddLiquidity,
                m.AddLiquidityRequest(
                    pool=POOL,
                    account="market/accounts/lp",
                    amount_ceu_desired=10**15,
                    amount_pft_desired=10**15,
                    deadline=_deadline(),
                    request_id="seed",
                ),
            )
        latencies: list[list[float]] = [[] for _ in range(clients)]
        stop = time.perf_counter() + seconds

        def worker(i: int) -> None:
            rng = random.Random(i)
            acct = f"market/accounts/t{i}"
            with Client(server.target, max_attempts=1, timeout=30) as c:
                for token in (m.TOKEN_CEU, m.TOKEN_PFT):
                    c.market_stub.Mint(
                        m.MintRequest(
                            account=acct,
                            amount=m.TokenAmount(token=token, amount=10**14),
                            request_id=f"{acct}{token}",
                        ),
                        metadata=ADMIN,
                    )
                k = 0
                while time.perf_counter() < stop:
                    request = m.SwapRequest(
                        pool=POOL,
                        account=acct,
                        token_in=rng.choice([m.TOKEN_CEU, m.TOKEN_PFT]),
                        amount_in=rng.randint(1, 10**9),
                        deadline=_deadline(),
                        request_id=f"{acct}-{k}",
                    )
                    t = time.perf_counter()
                    c.call(c.market_stub.Swap, request)
                    latencies[i].append(time.perf_counter() - t)
                    k += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        audit = server.running.ledger.audit()
        assert audit["balances"] == audit["replay"] and not audit["unbalanced"]
    finally:
        server.stop()
    ms = np.concatenate([np.asarray(x) for x in latencies]) * 1e3
    return {
        "store": store,
        "clients": clients,
        "swaps": int(ms.size),
        "swaps_per_s": ms.size / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [_measure("sqlite", n, args.seconds) for n in args.clients]
    results: dict[str, object] = {
        "benchmark": "market",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "rows": rows,
    }
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=2) as conn:
            for table in ("balances", "journal", "postings", "pools"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        rows += [_measure("postgresql", n, args.seconds, database_url=PG_URL) for n in args.clients]
    except Exception as e:  # noqa: BLE001
        results["postgresql"] = f"not measured: {type(e).__name__}: {e}"
    emit(results, args.out)


if __name__ == "__main__":
    main()
