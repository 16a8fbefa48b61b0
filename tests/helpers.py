"""Test helpers: real servers on loopback ports (in a thread, or as a child process), worker
threads whose failures fail the test, and waiting on conditions instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from idf.server import app
from idf.server.config import Settings

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# A deadline that only bounds a hang: what a test waits for normally comes in well under a second
# idle and in seconds on a loaded 2-core machine.
HANG_S = 60.0
# Starting `idf serve` (importing torch, opening stores) took 13-14 s with 2 busy processes on 2
# cores and other test runs alongside (~1 s idle): its bound is wider.
START_S = 120.0

# Child servers run torch (and the BLAS/OpenMP pools under it) on one thread. Unpinned, each child
# starts one thread per core for every op; with the test process, other children and busy
# processes all on 2 cores, those pools oversubscribe the machine and a spinning OpenMP barrier can
# stall an op for seconds. The server has no setting for this (config.py), so the environment
# sets it; a test's own `env` can still override it.
PINNED_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def wait_until(
    predicate: Callable[[], object], what: str, limit: float = HANG_S, interval: float = 0.02
) -> None:
    """Poll `predicate` until it is true; fail naming `what` after `limit` s (a bound on a hang,
    not a timing the test relies on). For conditions that nothing signals (a counter, /proc)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {limit:.0f} s waiting for {what}"
        time.sleep(interval)


def run_in_threads(
    fn: Callable[..., T], args: Iterable[tuple], limit: float | None = None
) -> list[T]:
    """Run `fn(*a)` for every `a` in `args`, each on its own thread, all at once; return their
    results in order. An exception in any of them (an assertion, a `pytest.raises` that saw
    nothing) is raised here, in the test's thread, so it fails the test — an exception that
    escapes a bare `threading.Thread` would only be a warning."""
    calls = list(args)
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = [pool.submit(fn, *a) for a in calls]
        return [f.result(limit) for f in futures]


class ServerThread:
    """The real async server, on its own event loop in a background thread."""

    def __init__(self, extra_handlers: tuple = (), **settings: object) -> None:
        settings.setdefault("port", 0)
        settings.setdefault(
            "auth", "off"
        )  # tests of auth say auth="api-key"; the rest test the rest
        settings.setdefault("data_dir", Path(tempfile.mkdtemp(prefix="idf-test-")))
        settings.setdefault("log_format", "text")
        self.settings = Settings(**settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(
            app.start(self.settings, extra_handlers), self.loop
        ).result(START_S)
        self.target = f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(HANG_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(HANG_S)


class ServerProcess:
    """`idf serve` as a child process (torch threads pinned, see PINNED_THREADS); parses the bound
    port from its JSON log. Every stderr line is kept in `lines`, and `wait_for_line` waits on
    them as they arrive (no polling interval)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "idf.cli",
                "serve",
                "--port",
                "0",
                "--log-format",
                "json",
                *args,
            ],
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",  # a stray byte in the log must not kill the reader thread
            env={
                **os.environ,
                **PINNED_THREADS,
                "IDF_DATA_DIR": tempfile.mkdtemp(prefix="idf-test-"),
                "IDF_AUTH": "off",  # as ServerThread: tests of auth set IDF_AUTH
                **(env or {}),
            },
        )
        self.lines: list[str] = []
        self.closed = False  # stderr reached its end: the process is gone
        self._changed = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self.port = int(self._listening()["port"])
        except BaseException:
            self.kill()
            raise
        self.target = f"127.0.0.1:{self.port}"

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def _listening(self) -> dict:
        def entry() -> dict | None:
            for line in self.lines:
                try:
                    parsed = json.loads(line)
                except ValueError:  # not a log line (a traceback on the way out): keep reading
                    continue
                if isinstance(parsed, dict) and parsed.get("message") == "listening":
                    return parsed
            return None

        with self._changed:
            found = self._changed.wait_for(lambda: entry() or self.closed, START_S)
            if isinstance(found, dict):
                return found
            if self.closed:
                raise RuntimeError(f"server exited early: {''.join(self.lines)}")
            raise RuntimeError(f"server did not start in {START_S:.0f} s: {''.join(self.lines)}")

    def wait_for_line(
        self, match: str | Callable[[str], bool], limit: float = HANG_S, start: int = 0
    ) -> int:
        """Wait until a stderr line from index `start` on contains `match` (or satisfies it, if
        callable); returns that line's index. Fails with the last lines if the process ends first
        or after `limit` s (a bound on a hang)."""
        test = match if callable(match) else (lambda line: match in line)

        def found() -> int | None:
            for i in range(start, len(self.lines)):
                if test(self.lines[i]):
                    return i
            return None

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self.closed, limit)
            index = found()
            if index is None:
                why = "the server's log ended" if self.closed else f"timed out after {limit:.0f} s"
                raise AssertionError(
                    f"{why} waiting for a line with {match!r}; last lines:\n{self.tail()}"
                )
            return index

    def tail(self, n: int = 20) -> str:
        return "".join(self.lines[-n:])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_with_cpu(self, timeout: float = HANG_S) -> tuple[int, float]:
        """Wait for the process to exit (polling, up to `timeout` s: a bound on a hang); its exit
        code and the CPU seconds (user + system) it used in all, from the kernel's accounting."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(
                    status
                )  # reaped here, not by Popen
                return self.proc.returncode, usage.ru_utime + usage.ru_stime
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.proc.args, timeout)
            time.sleep(0.02)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = HANG_S) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(HANG_S)
