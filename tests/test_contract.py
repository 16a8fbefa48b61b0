"""The contract: lint, HTTP bindings, docs, field behaviours, and generated code in sync."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2
from helpers import REPO

from idf.server.app import SERVICE_NAMES
from idf.server.auth import contract_modules

MODULES = tuple(contract_modules())  # every idf.v1 *_pb2, found: a new proto is covered
VENV_BIN = Path(sys.executable).parent
BUF = shutil.which("buf", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
# buf.gen.yaml runs `python` (grpc_tools' protoc and our stub plugin): use this interpreter
ENV = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
TS = REPO / "clients" / "typescript"


def services():
    for module in MODULES:
        yield from module.DESCRIPTOR.services_by_name.values()


def test_every_service_is_served():
    assert sorted(s.full_name for s in services()) == sorted(SERVICE_NAMES)


@pytest.mark.parametrize(
    "method", [m for s in services() for m in s.methods], ids=lambda m: m.full_name
)
def test_every_rpc_has_an_http_binding(method):
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    assert verb in ("get", "post", "patch", "delete", "put"), (
        f"{method.full_name} has no google.api.http"
    )
    assert getattr(rule, verb).startswith("/v1/")
    if verb == "get":
        assert not rule.body, "GET bindings carry no body"


def test_every_field_has_a_field_behavior():
    missing = []
    for module in MODULES:
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for field in message.fields:
                if not field.GetOptions().Extensions[field_behavior_pb2.field_behavior]:
                    missing.append(field.full_name)
    assert not missing


def test_buf_lint_passes():
    assert BUF, "buf is not installed (pip install buf-bin)"
    result = subprocess.run([BUF, "lint"], cwd=REPO, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_element_is_documented(tmp_path: Path):
    """Leading comments on every service, RPC, message, field and enum value (they become the
    OpenAPI and SDK docs)."""
    image = tmp_path / "image.binpb"
    subprocess.run(
        [BUF, "build", "-o", str(image), "--path", "proto/idf"], cwd=REPO, check=True, env=ENV
    )
    fds = descriptor_pb2.FileDescriptorSet.FromString(image.read_bytes())
    undocumented = []
    for file in fds.file:
        if not file.name.startswith("idf/"):
            continue
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}

        def need(path: tuple[int, ...], name: str) -> None:
            if not comments.get(path, "").strip():
                undocumented.append(f"{file.name}: {name}")

        for i, service in enumerate(file.service):
            need((6, i), service.name)
            for j, method in enumerate(service.method):
                need((6, i, 2, j), f"{service.name}.{method.name}")
        for i, message in enumerate(file.message_type):
            need((4, i), message.name)
            for j, field in enumerate(message.field):
                need((4, i, 2, j), f"{message.name}.{field.name}")
        for i, enum in enumerate(file.enum_type):
            need((5, i), enum.name)
            for j, value in enumerate(enum.value):
                need((5, i, 2, j), f"{enum.name}.{value.name}")
    assert not undocumented


def _generated(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.suffix in suffixes}


def test_regenerated_code_equals_committed_code(tmp_path: Path):
    """Run buf generate into a temp dir and compare with the committed Python and TypeScript."""
    assert (TS / "node_modules" / ".bin" / "protoc-gen-es").exists(), (
        "run npm ci in clients/typescript"
    )
    template = yaml.safe_load((REPO / "buf.gen.yaml").read_text())
    outs = {}
    for plugin in template["plugins"]:
        committed = REPO / plugin["out"]
        plugin["out"] = str(tmp_path / plugin["out"])
        outs[committed] = Path(plugin["out"])
    gen = tmp_path / "buf.gen.yaml"
    gen.write_text(yaml.safe_dump(template))
    subprocess.run([BUF, "generate", "--template", str(gen)], cwd=REPO, check=True, env=ENV)
    for committed, fresh in outs.items():
        suffixes = (".ts",) if "typescript" in str(committed) else (".py", ".pyi")
        subdir = "idf/v1" if suffixes != (".ts",) else ""
        want = _generated(fresh / subdir, suffixes)
        have = _generated(committed / subdir, suffixes)
        assert sorted(want) == sorted(have), f"generated file set differs under {committed}"
        stale = [name for name in want if not filecmp.cmp(want[name], have[name], shallow=False)]
        assert not stale, f"committed generated code is stale: {stale}; run `make generate`"


def test_typescript_package_type_checks():
    tsc = TS / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "run npm ci in clients/typescript"
    result = subprocess.run([str(tsc), "-p", str(TS), "--noEmit"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
