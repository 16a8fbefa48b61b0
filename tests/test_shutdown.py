"""Graceful shutdown of a real `idf serve` process: SIGTERM lets in-flight calls finish and
refuses new ones; past the grace period the engine really stops.

Nothing here depends on how fast the machine is: each step waits for what it needs (a log line,
an answer, CPU time spent by the server) under a deadline that only bounds a hang, and how much
work the server does after SIGTERM is measured in its CPU seconds, not in wall time."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import HANG_S, ServerProcess, wait_until

from idf.client import CancelledError, Client, UnavailableError
from idf.v1 import diffusion_pb2


def _rpc_started(rpc: str):
    """At DEBUG the server logs "rpc start" when a handler begins."""
    return lambda line: '"rpc start"' in line and rpc in line


@pytest.mark.slow
def test_sigterm_finishes_in_flight_calls_and_refuses_new_ones():
    # grace 120 s: the in-flight call below is a few CPU-seconds, so it finishes in the grace
    # period even on a heavily loaded machine (at ~1/20 of a core it would need ~80 s)
    server = ServerProcess(env={"IDF_GRACE_PERIOD": "120", "IDF_LOG_LEVEL": "DEBUG"})
    try:
        with Client(server.target, max_attempts=1) as c:
            assert c.health() == "SERVING"

        def long_call():
            with Client(server.target, max_attempts=1, timeout=240) as c:
                # 64^2 sites x 60,000 substeps: ~3 CPU-s of work (measured), far longer than the
                # server takes to handle SIGTERM and close its door (milliseconds of its CPU). The
                # answer (one float32 frame, 16 KiB) fits the transport's first HTTP/2 window, so
                # it is written at once: a larger answer that the client reads slowly can be lost
                # when the server exits (a server bug this test does not cover; it failed ~1 in 8
                # runs on a loaded machine with a 2 MiB answer)
                return c.predict(np.ones((64, 64), np.float32), 1, substeps=60_000, diffusivity=0.1)

        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(long_call)
            try:
                server.wait_for_line(_rpc_started("Predict"))
                server.terminate()
                # From before the "shutting down" line the server refuses new calls UNAVAILABLE
                # (SHUTTING_DOWN) itself, but a call that grpc core received as its stop() began
                # is reset CANCELLED before it reaches the server (a race inside grpc core, seen on
                # new connections; the call was never started). Call until refused: UNAVAILABLE.
                server.wait_for_line('"shutting down"')
                raced = []
                with Client(server.target, max_attempts=1, timeout=HANG_S) as c:
                    deadline = time.monotonic() + HANG_S
                    while True:
                        assert time.monotonic() < deadline, "no new call was refused after SIGTERM"
                        try:
                            c.predict(np.ones((4, 4)), 1, diffusivity=0.1)
                            raise AssertionError("a call after the shutting-down line was served")
                        except CancelledError:
                            raced.append("cancelled")
                        except UnavailableError:
                            break
                refused_while_in_flight = not in_flight.done()
                forecast = in_flight.result(HANG_S * 4)  # its error, if any, fails the test here
            except BaseException:
                server.kill()  # do not wait out the long call
                raise
        assert forecast.frames.shape == (1, 64, 64)
        # a uniform field is a steady state of diffusion: the answer is the input, every frame
        np.testing.assert_allclose(forecast.frames, 1.0, rtol=1e-5)
        assert refused_while_in_flight, "the in-flight call ended before a new call was refused"
        print(f"calls that raced the start of shutdown: {raced or 'none'}")
        assert server.wait(HANG_S) == 0
    except BaseException:
        print(server.tail(30))
        raise
    finally:
        server.kill()


@contextlib.contextmanager
def _cpu_hog(processes: int):
    """Busy loops that keep the machine loaded (load ~ processes) while the test runs."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()


# CPU-seconds the server may spend from SIGTERM to its exit. Measured (this 2-core box, idle and
# with 2 + 2 busy processes): 0.2-0.5 CPU-s — the 1 s grace period, during which the engine
# thread (pinned to one torch thread) can use at most ~1 CPU-s, then shutdown and interpreter
# exit. An engine that does not stop would spend the rest of its call: >= 50 CPU-s for both calls
# below (Predict 5.2e9 and Sample 1.3e10 site updates, ~1e8 per CPU-s here). 10 leaves a margin
# of 20x over the measurement and 5x under the failure.
SHUTDOWN_CPU_S = 10.0


@pytest.mark.slow
@pytest.mark.parametrize("rpc", ["Sample", "Predict"])
def test_sigterm_stops_engine_work_within_the_grace_period_under_load(rpc):
    """SIGTERM while a call that would run for many minutes is in flight, on a loaded machine:
    the server exits having spent little CPU after SIGTERM, so the engine stopped (main: the
    engine thread ran 85 s past the grace period). CPU seconds, not wall time: a loaded machine
    slows the exit in wall time but not in the server's own CPU time. The figures are printed."""
    server = ServerProcess(env={"IDF_GRACE_PERIOD": "1", "IDF_LOG_LEVEL": "DEBUG"})

    def long_call() -> BaseException | None:
        with Client(server.target, max_attempts=1, timeout=600) as c:
            try:
                if rpc == "Predict":
                    c.predict(np.ones((256, 256)), 4, substeps=20000, diffusivity=0.1)
                else:
                    request = diffusion_pb2.SampleRequest(
                        energy_model=diffusion_pb2.EnergyModelSpec(name="phi4"),
                        shape=[128, 128],
                        sample_count=16,
                        sampler=diffusion_pb2.SamplerSpec(
                            kind=diffusion_pb2.SAMPLER_KIND_MALA, steps=50_000
                        ),
                    )  # 1.3e10: within the ceiling
                    list(c.sample(request))
            except (UnavailableError, CancelledError) as e:
                return e  # what a call cut by shutdown gets
        return None

    try:
        with _cpu_hog(os.cpu_count() or 2), ThreadPoolExecutor(1) as pool:
            call = pool.submit(long_call)
            try:
                server.wait_for_line(_rpc_started(rpc))
                # SIGTERM once the engine is inside its loop: the server has spent 0.5 CPU-s on
                # the call (not a fixed sleep: under load that may not be enough to get there)
                started = server.cpu_seconds()
                wait_until(
                    lambda: server.cpu_seconds() - started >= 0.5 or call.done(),
                    "the engine to start",
                )
                assert not call.done(), call.result()
                at_sigterm = server.cpu_seconds()
                sent = time.monotonic()
                server.terminate()
                code, cpu_total = server.wait_with_cpu(HANG_S * 2)
                took = time.monotonic() - sent
                error = call.result(HANG_S)
            except BaseException:
                server.kill()  # do not wait out the long call
                raise
        after = cpu_total - at_sigterm
        print(
            f"{rpc}: exited {took:.2f} s and {after:.2f} CPU-s after SIGTERM "
            f"(grace 1 s, {os.cpu_count()} busy processes on {os.cpu_count()} cores)"
        )
        assert code == 0
        assert after < SHUTDOWN_CPU_S, (
            f"the server spent {after:.1f} CPU-s after SIGTERM: the engine kept running"
        )
        assert isinstance(error, (UnavailableError, CancelledError)), error
        assert any('"stopped"' in line for line in server.lines)
    except BaseException:
        print(server.tail(30))
        raise
    finally:
        server.kill()
