from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton kernels run through Triton's CPU interpreter. This must be set before any
# kernel module is imported (triton.jit reads it when it decorates).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

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


def pytest_report_header(config):
    where = "GPU (compiled)" if torch.cuda.is_available() else "CPU interpreter (TRITON_INTERPRET=1)"
    return f"Triton kernels run on: {where}"
