"""Options and helpers shared by the CLI's command modules."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from idf.cli.output import REJECTED, UNREACHABLE, fail
from idf.client import Client, IdfError, UnavailableError, default_target

ServerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--server", help="HOST:PORT of the server [default: IDF_SERVER or localhost:50051]."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Deadline of each call, seconds.")
]


# Credentials of every client command: `idf --api-key ...` (set by the app's callback), else the
# IDF_API_KEY environment variable.
CREDENTIALS: dict[str, str] = {}


def api_key() -> str | None:
    return CREDENTIALS.get("api_key") or os.environ.get("IDF_API_KEY") or None


@contextlib.contextmanager
def connected(server: str | None, timeout: float, as_json: bool) -> Iterator[Client]:
    """A client for the command; a failed call inside the block ends the command with a clear
    message and exit code 3 (unreachable) or 4 (the server refused the request)."""
    target = server or default_target()
    with Client(target, timeout=timeout, max_attempts=3, api_key=api_key()) as c:
        try:
            yield c
        except UnavailableError as e:
            fail(f"cannot reach the server at {target}: {e.message}", UNREACHABLE, as_json=as_json)
        except IdfError as e:
            fail(str(e), REJECTED, as_json=as_json)


def writable_output(out: Path, suffixes: tuple[str, ...], as_json: bool) -> None:
    """Refuse an --out with another suffix or in a folder that does not exist (exit 1)."""
    if out.suffix not in suffixes:
        fail(f"--out must end in {' or '.join(suffixes)}, got {out}", as_json=as_json)
    if not out.parent.is_dir():
        fail(f"--out folder {out.parent} does not exist", as_json=as_json)


def needs_server_extra(error: ImportError, what: str, as_json: bool) -> None:
    fail(
        f"{what} needs the server extra (pip install 'industriverse-sdk[server]'): {error}",
        as_json=as_json,
    )
