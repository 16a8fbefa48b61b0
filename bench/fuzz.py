"""The large property-based fuzz run: every RPC of proto/idf/v1 on both faces.

    python bench/fuzz.py [--requests 50000] [--clients 4] [--seed 0] [--out results.json]

A real `idf serve` child process (both faces, a per-call work ceiling of --max-site-updates, a
10 s deadline per call), warmed up with valid requests for every RPC, then --requests cases drawn
by Hypothesis from the strategies of tests/fuzz_strategies.py (generated from the descriptors)
and sent by --clients threads. The oracle is the CI test's (tests/test_fuzz.py): no INTERNAL /
UNKNOWN / DATA_LOSS / deadline, no 5xx, Status+ErrorInfo error bodies, the process alive and
SERVING, RSS back within 10% of its post-warm-up value. A crash is counted and the server
restarted, so one run finds more than one. Prints one JSON document: requests per face, RPC and
code, the distinct failures with the smallest request that caused each, RSS, wall time.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from report import emit  # noqa: I001 - bench/ is the script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzz_strategies import DEADLINE_S, FuzzServer, Harness, cases, machine, warm_up  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=4, help="threads sending at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-site-updates",
        type=int,
        default=50_000_000,
        help="the server's max_call_site_updates",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    server = FuzzServer(max_call_site_updates=args.max_site_updates)
    harness = Harness(server, restart=True)
    vocab = harness.vocab()
    t0 = time.monotonic()
    warm_up(harness, vocab)
    warm_s = time.monotonic() - t0
    baseline = peak = server.rss_bytes()
    slots = threading.Semaphore(args.clients * 2)
    pool = ThreadPoolExecutor(args.clients)
    sent = 0

    def send(case: object) -> None:
        try:
            harness.send(case)  # type: ignore[arg-type]
        finally:
            slots.release()

    @seed(args.seed)
    @settings(
        max_examples=args.requests,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(vocab))
    def fuzz(case: object) -> None:
        nonlocal sent, peak
        slots.acquire()
        pool.submit(send, case)
        sent += 1
        if sent % 1000 == 0:
            if server.alive():
                peak = max(peak, server.rss_bytes())
            print(
                f"{sent} sent, {harness.requests} answered, {len(harness.findings)} distinct failures, "
                f"{time.monotonic() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    t1 = time.monotonic()
    fuzz()
    pool.shutdown(wait=True)
    fuzz_s = time.monotonic() - t1
    problems = harness.check_serving()
    end = None
    if server.alive():
        warm_up(harness, vocab, rounds=1)
        time.sleep(1.0)
        end = server.rss_bytes()
    server.stop()
    if end is not None and end > 1.10 * baseline:
        problems.append(
            f"RSS {end / 2**20:.0f} MiB at the end vs {baseline / 2**20:.0f} MiB after warm-up (> +10%)"
        )
    summary = harness.summary(
        seconds=round(fuzz_s, 1),
        requests_per_s=round(harness.requests / fuzz_s, 1),
        warm_up_s=round(warm_s, 1),
        clients=args.clients,
        seed=args.seed,
        deadline_s=DEADLINE_S,
        max_call_site_updates=args.max_site_updates,
        rss_mib={
            "warm": round(baseline / 2**20, 1),
            "peak": round(peak / 2**20, 1),
            "end": round(end / 2**20, 1) if end else None,
            "end_vs_warm": round(end / baseline - 1, 3) if end else None,
        },
        problems=problems,
    )
    results = {
        "benchmark": "fuzz",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "command": " ".join(["python", "bench/fuzz.py", *sys.argv[1:]]),
        **summary,
        "findings": [
            {
                "face": f.face,
                "rpc": f.rpc,
                "outcome": f.outcome,
                "count": f.count,
                "request": f.smallest,
                "server_log": f.log,
            }
            for f in sorted(harness.findings.values(), key=lambda f: (f.rpc, f.face, f.outcome))
        ],
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
