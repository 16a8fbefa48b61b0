"""What authentication and authorisation add to a call: p50/p95 latency of a cheap RPC
(ListPolicies) against a server with `auth = "off"` and one with `auth = "api-key"` (a cached API
key), started in the same run and called alternately in rounds, and the cost of the check itself
(`Authority.check` with a cached key, timed directly). Goal (issue 15): < 50 µs per call at p50.

    python bench/auth.py [--calls 2000] [--rounds 5] [--out results.json]

Both servers run in this process (grpc.aio on their own threads), each called over loopback by a
blocking client; the added latency is the difference of the medians, round by round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import ServerThread  # noqa: E402
from report import emit  # noqa: E402

from idf.client import Client  # noqa: E402
from idf.server import auth  # noqa: E402
from idf.store.keys import KeyStore  # noqa: E402

ADMIN = "bench-admin-token"


def _latencies(client: Client, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        client.list_policies()
        out.append(time.perf_counter() - t)
    return out


def _check_cost(calls: int) -> dict[str, float]:
    """Authority.check for one API key in the cache, timed directly (µs)."""
    store = KeyStore(str(Path(tempfile.mkdtemp(prefix="idf-bench-")) / "keys.sqlite3"))
    _, secret = store.create("bench", "default", ("operator",))
    authority = auth.Authority("api-key", store)
    metadata = [("authorization", f"Bearer {secret}")]
    rpc = "idf.v1.PredictService/Predict"
    authority.check(rpc, metadata)  # fills the cache
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        authority.check(rpc, metadata)
        times.append(time.perf_counter() - t)
    store.close()
    times.sort()
    return {"p50_us": times[len(times) // 2] * 1e6, "p95_us": times[int(len(times) * 0.95)] * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    off = ServerThread(data_dir=Path(tempfile.mkdtemp(prefix="idf-bench-")))
    on = ServerThread(data_dir=Path(tempfile.mkdtemp(prefix="idf-bench-")), auth="api-key", admin_token=ADMIN,
                      rate_limit_requests_per_s=1e9, rate_limit_burst=1e9,
                      tenant_rate_limit_requests_per_s=1e9, tenant_rate_limit_burst=1e9)  # fmt: skip
    rounds = []
    try:
        with Client(on.target, api_key=ADMIN, max_attempts=1) as admin:
            secret = admin.create_api_key("bench", ["viewer"]).secret
        with (
            Client(off.target, max_attempts=1) as a,
            Client(on.target, api_key=secret, max_attempts=1) as b,
        ):
            _latencies(a, 200), _latencies(b, 200)  # warm-up: channels, caches
            for _ in range(args.rounds):
                plain, authed = _latencies(a, args.calls), _latencies(b, args.calls)
                p50_off, p50_on = statistics.median(plain), statistics.median(authed)
                rounds.append({
                    "p50_off_us": p50_off * 1e6, "p50_api_key_us": p50_on * 1e6,
                    "added_p50_us": (p50_on - p50_off) * 1e6,
                    "p95_off_us": statistics.quantiles(plain, n=20)[18] * 1e6,
                    "p95_api_key_us": statistics.quantiles(authed, n=20)[18] * 1e6,
                })  # fmt: skip
    finally:
        off.stop()
        on.stop()
    emit(
        {
            "benchmark": "auth",
            "rpc": "ListPolicies",
            "calls_per_round": args.calls,
            "rounds": rounds,
            "added_p50_us_median": statistics.median(r["added_p50_us"] for r in rounds),
            "check_with_cached_key": _check_cost(20_000),
            "goal_us": 50,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
