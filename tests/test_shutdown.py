"""Graceful shutdown of a real `idf serve` process: SIGTERM lets in-flight calls finish and
refuses new ones."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from helpers import ServerProcess
from idf.client import Client, UnavailableError


@pytest.mark.slow
def test_sigterm_finishes_in_flight_calls_and_refuses_new_ones():
    server = ServerProcess(env={"IDF_GRACE_PERIOD": "60", "IDF_LOG_LEVEL": "DEBUG"})
    try:
        results: dict[str, object] = {}

        def long_call() -> None:
            with Client(server.target, max_attempts=1, timeout=120) as c:
                try:
                    # a few seconds of work: 256^2 sites x 1000 steps x 4 frames
                    results["forecast"] = c.predict(np.ones((256, 256)), 4, substeps=1000, diffusivity=0.1)
                except Exception as e:  # noqa: BLE001
                    results["error"] = e

        with Client(server.target, max_attempts=1) as c:
            assert c.health() == "SERVING"
        worker = threading.Thread(target=long_call)
        worker.start()
        _wait_until_in_flight(server)
        server.terminate()
        time.sleep(0.5)
        with Client(server.target, max_attempts=1, timeout=10) as c:
            with pytest.raises(UnavailableError):
                c.predict(np.ones((4, 4)), 1, diffusivity=0.1)
        worker.join(120)
        assert "error" not in results, results.get("error")
        assert results["forecast"].frames.shape == (4, 256, 256)
        assert server.wait(60) == 0
        assert any('"shutting down"' in line for line in server.lines)
    finally:
        server.kill()


def _wait_until_in_flight(server: ServerProcess) -> None:
    """At DEBUG the server logs "rpc start" when a handler begins."""
    deadline = time.monotonic() + 30
    while not any('"rpc start"' in line and "Predict" in line for line in server.lines):
        assert time.monotonic() < deadline, "the long call never reached the server"
        time.sleep(0.05)
