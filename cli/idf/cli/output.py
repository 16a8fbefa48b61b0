"""How the CLI speaks: rich tables for people, JSON for programs, one clear line for errors."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

# exit codes
INPUT_ERROR = 1  # a bad file, array or option value
UNREACHABLE = 3  # the server could not be reached
REJECTED = 4  # the server answered with an error status


def fail(message: str, code: int = INPUT_ERROR, *, as_json: bool = False) -> NoReturn:
    """Print an error (as {"error": ...} with --json) and exit non-zero."""
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), file=sys.stderr)
    else:
        err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def emit(data: dict[str, Any], as_json: bool, title: str = "") -> None:
    """Print a flat result as JSON or as a two-column table."""
    if as_json:
        print(json.dumps(data, default=float))
        return
    table = Table(title=title or None, show_header=False, box=None, padding=(0, 2))
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/]", _fmt(value))
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
