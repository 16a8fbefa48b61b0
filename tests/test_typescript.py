"""The TypeScript SDK builds with tsc and decodes Fields encoded by the Python SDK."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
from helpers import REPO

from idf.client import to_field

TS = REPO / "clients" / "typescript"


def test_typescript_builds_and_its_tests_pass(tmp_path):
    tsc = TS / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "run npm ci in clients/typescript"
    node = shutil.which("node")
    assert node, "node is required for the TypeScript SDK"
    subprocess.run([str(tsc), "-p", str(TS)], check=True)
    field = to_field(np.arange(12, dtype=np.float64).reshape(3, 4) / 4, spacing=(0.25, 2.0))
    path = tmp_path / "field.binpb"
    path.write_bytes(field.SerializeToString())
    result = subprocess.run(
        [node, "--test", "test/field.test.mjs"],
        cwd=TS,
        capture_output=True,
        text=True,
        env={**os.environ, "IDF_PY_FIELD": str(path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 3" in result.stdout and "# fail 0" in result.stdout


def test_typescript_rest_client_against_a_live_server(tmp_path):
    from helpers import ServerThread

    tsc = TS / "node_modules" / ".bin" / "tsc"
    subprocess.run([str(tsc), "-p", str(TS)], check=True)
    from idf.client import Client

    server = ServerThread(rest_port=0)
    authed = ServerThread(rest_port=0, auth="api-key", admin_token="ts-admin")
    try:
        with Client(authed.target, api_key="ts-admin", max_attempts=1) as c:
            key = c.create_api_key("ts", ["viewer"]).secret
        result = subprocess.run(
            [shutil.which("node"), "--test", "test/rest.test.mjs"],
            cwd=TS,
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "IDF_REST_URL": f"http://127.0.0.1:{server.running.rest_port}",
                "IDF_REST_AUTH_URL": f"http://127.0.0.1:{authed.running.rest_port}",
                "IDF_API_KEY": key,
            },
        )
    finally:
        server.stop()
        authed.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 4" in result.stdout and "# skipped 0" in result.stdout
