"""Options and helpers shared by the CLI's command modules."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from idf.cli.output import REJECTED, UNREACHABLE, fail
from idf.client import Client, IdfError, UnavailableError, default_target

ServerOpt = Annotated[
    Optional[str], typer.Option("--server", help="HOST:PORT of the server [default: IDF_SERVER or localhost:50051].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="Deadline of each call, seconds.")]


def client(server: str | None, timeout: float, attempts: int = 3) -> Client:
    return Client(server or default_target(), timeout=timeout, max_attempts=attempts)


def call_failed(error: IdfError, server: str, as_json: bool) -> None:
    if isinstance(error, UnavailableError):
        fail(f"cannot reach the server at {server}: {error.message}", UNREACHABLE, as_json=as_json)
    fail(str(error), REJECTED, as_json=as_json)
