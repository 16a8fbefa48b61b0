"""CI-sized property-based fuzz run over every RPC of proto/idf/v1 on both faces.

Strategies and the oracle live in tests/fuzz_strategies.py (bench/fuzz.py runs the large one).
The run is derandomized (the same requests every time), sends at least 2,000 requests against a
real `idf serve` child process with a per-call work ceiling, and asserts: no INTERNAL / UNKNOWN /
DATA_LOSS / DEADLINE_EXCEEDED, no HTTP 5xx, every REST
error a google.rpc.Status with an ErrorInfo reason, the server alive and SERVING at the end, and
its RSS back within 10% of the post-warm-up value. It prints one summary JSON line.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from fuzz_strategies import FuzzServer, Harness, cases, machine, warm_up
from helpers import wait_until
from hypothesis import HealthCheck, Phase, given, settings

REQUESTS = int(os.environ.get("IDF_FUZZ_REQUESTS", "2200"))


@pytest.fixture(scope="module")
def harness():
    server = FuzzServer()
    h = Harness(server)
    yield h
    server.stop()


def test_fuzz_every_rpc_on_both_faces(harness):
    vocab = harness.vocab()
    warm_up(harness, vocab)
    baseline = harness.server.rss_bytes()
    peak = baseline
    start = time.monotonic()
    skipped = 0

    @settings(
        max_examples=REQUESTS,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(vocab))
    def fuzz(case):
        nonlocal peak, skipped
        if (
            not harness.server.alive()
        ):  # every call has its deadline (fuzz_strategies.DEADLINE_S): no run hangs
            skipped += 1
            return
        harness.send(case)
        if harness.requests % 100 == 0:
            peak = max(peak, harness.server.rss_bytes())

    fuzz()
    elapsed = time.monotonic() - start
    problems = harness.check_serving()
    end = None
    if harness.server.alive():
        warm_up(harness, vocab, rounds=1)
        # the server trims freed memory shortly after large calls (server/idf/server/memory.py):
        # wait for the RSS to come back, up to the bound on a hang; a finding if it never does
        try:
            wait_until(
                lambda: harness.server.rss_bytes() <= 1.10 * baseline,
                "the RSS to come back within 10% of warm-up",
            )
        except AssertionError:
            pass  # reported below with the numbers
        end = harness.server.rss_bytes()
    summary = harness.summary(
        seconds=round(elapsed, 1),
        skipped=skipped,
        machine=machine(),
        rss_mib={
            "warm": round(baseline / 2**20, 1),
            "peak": round(peak / 2**20, 1),
            "end": round(end / 2**20, 1) if end else None,
        },
    )
    print("\nFUZZ " + json.dumps(summary))
    if harness.findings:
        print(harness.report())
    if skipped:
        problems.append(f"{skipped} cases not sent: the server died")
    if end is not None and end > 1.10 * baseline:
        problems.append(
            f"RSS {end / 2**20:.0f} MiB at the end vs {baseline / 2**20:.0f} MiB after warm-up (> +10%)"
        )
    assert harness.requests >= 2000
    assert not harness.findings and not problems, (problems, harness.report())
