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
from pg import postgres_url  # noqa: E402,F401 - a fixture: a private PostgreSQL database per test

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


def pytest_configure(config):
    # An exception that escapes a helper thread (an assertion, a `pytest.raises` that saw nothing)
    # is caught by pytest's threadexception plugin, which by default only warns. As an error, the
    # warning fails the test during which the thread died (in its call or teardown phase), with
    # the thread's traceback. Prefer helpers.run_in_threads, which raises in the test itself.
    config.addinivalue_line("filterwarnings", "error::pytest.PytestUnhandledThreadExceptionWarning")


def pytest_report_header(config):
    where = (
        "GPU (compiled)" if torch.cuda.is_available() else "CPU interpreter (TRITON_INTERPRET=1)"
    )
    return f"Triton kernels run on: {where}"
