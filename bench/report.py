"""How every benchmark reports: one JSON document on stdout, optionally also saved to a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(results: dict, out: Path | None) -> None:
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
