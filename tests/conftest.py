from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import ServerThread  # noqa: E402

from idf.client import Client  # noqa: E402


@pytest.fixture(scope="session")
def server() -> ServerThread:
    """One real server on a loopback port for the whole session."""
    running = ServerThread()
    yield running
    running.stop()


@pytest.fixture()
def client(server: ServerThread) -> Client:
    with Client(server.target, timeout=120, max_attempts=1) as c:
        yield c
