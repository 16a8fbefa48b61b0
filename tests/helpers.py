"""Test helpers: real servers on loopback ports (in a thread, or as a child process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import sys
import threading
import time
from pathlib import Path

from idf.server import app
from idf.server.config import Settings

REPO = Path(__file__).resolve().parents[1]


class ServerThread:
    """The real async server, on its own event loop in a background thread."""

    def __init__(self, extra_handlers: tuple = (), **settings: object) -> None:
        settings.setdefault("port", 0)
        settings.setdefault("data_dir", Path(tempfile.mkdtemp(prefix="idf-test-")))
        settings.setdefault("log_format", "text")
        self.settings = Settings(**settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(app.start(self.settings, extra_handlers), self.loop).result(30)
        self.target = f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class ServerProcess:
    """`idf serve` as a child process; parses the bound port from its JSON log."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "idf.cli", "serve", "--port", "0", "--log-format", "json", *args],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "IDF_DATA_DIR": tempfile.mkdtemp(prefix="idf-test-"), **(env or {})},
        )
        self.lines: list[str] = []
        self.port = self._wait_for_port()
        self.target = f"127.0.0.1:{self.port}"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"server exited early: {''.join(self.lines)}")
            self.lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:  # not a log line (a traceback on the way out): keep reading
                continue
            if entry.get("message") == "listening":
                threading.Thread(target=self._drain, daemon=True).start()
                return int(entry["port"])
        raise RuntimeError("server did not start in 60 s")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
