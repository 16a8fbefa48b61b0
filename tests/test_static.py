"""Static checks in `make test`: ruff's lint (pyflakes, pycodestyle errors, import order; the rule
set is pyproject.toml's [tool.ruff.lint]) and `ruff format` on the whole tree, and mypy --strict
on the Python SDK, the engine and the kernels ([tool.mypy]: the files it checks, the relaxations
for the untyped gRPC stubs and for Triton's untyped `jit`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]' installs it)")
    return path


def test_ruff_lint_is_clean():
    done = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_tree_is_formatted():
    """`ruff format` leaves every file as it is (run `ruff format .` to mend)."""
    done = subprocess.run(
        [_tool("ruff"), "format", "--check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_sdk_engine_and_kernels_are_strictly_typed():
    done = subprocess.run(
        [_tool("mypy"), "--no-incremental"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    checked = re.search(r"no issues found in (\d+) source files", done.stdout)
    # the SDK (9 modules), the engine (45) and the kernels (11), not an empty selection
    assert checked and int(checked.group(1)) >= 65, done.stdout
