"""Options and helpers shared by the CLI's command modules."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import grpc
import typer

from idf.cli.output import REJECTED, UNREACHABLE, fail
from idf.client import Client, IdfError, UnavailableError, default_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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


def project() -> dict[str, str]:
    """The [client] table of the project's config: the file --config or IDF_CONFIG names, else
    ./idf.toml when there is one (what `idf init` writes); {} without one."""
    path = CREDENTIALS.get("config") or os.environ.get("IDF_CONFIG")
    candidate = Path(path) if path else Path("idf.toml")
    if not candidate.is_file():
        if path:
            fail(f"config file not found: {path}")
        return {}
    try:
        table = tomllib.loads(candidate.read_text()).get("client", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(f"cannot read {candidate}: {e}")
    return {k: str(v) for k, v in table.items()} if isinstance(table, dict) else {}


def api_key() -> str | None:
    """`--api-key` (an API key or a bearer token), else `--token`, else IDF_API_KEY, IDF_TOKEN,
    else the project's [client] api_key."""
    for name in ("api_key", "token"):
        if CREDENTIALS.get(name):
            return CREDENTIALS[name]
    return (
        os.environ.get("IDF_API_KEY")
        or os.environ.get("IDF_TOKEN")
        or project().get("api_key")
        or None
    )


def channel_credentials() -> grpc.ChannelCredentials | None:
    """TLS to the server when `--tls-ca` (or IDF_TLS_CA) names the CA to trust; with `--tls-cert`
    and `--tls-key` (IDF_TLS_CERT, IDF_TLS_KEY) the client also presents its certificate (mTLS)."""
    paths = {
        name: CREDENTIALS.get(name) or os.environ.get(f"IDF_{name.upper()}")
        for name in ("tls_ca", "tls_cert", "tls_key")
    }
    if not any(paths.values()):
        return None
    if bool(paths["tls_cert"]) != bool(paths["tls_key"]):
        fail("--tls-cert and --tls-key go together")
    try:
        data = {k: Path(v).read_bytes() if v else None for k, v in paths.items()}
    except OSError as e:
        fail(f"cannot read a TLS file: {e}")
    return grpc.ssl_channel_credentials(data["tls_ca"], data["tls_key"], data["tls_cert"])


@contextlib.contextmanager
def connected(server: str | None, timeout: float, as_json: bool) -> Iterator[Client]:
    """A client for the command; a failed call inside the block ends the command with a clear
    message and exit code 3 (unreachable) or 4 (the server refused the request)."""
    target = (
        server
        or (os.environ.get("IDF_SERVER") and default_target())
        or project().get("server")
        or default_target()
    )
    with Client(
        target,
        timeout=timeout,
        max_attempts=3,
        api_key=api_key(),
        credentials=channel_credentials(),
    ) as c:
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
