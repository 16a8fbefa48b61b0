"""The `idf` CLI against a real server: happy paths, --json, and clear failures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from idf.cli.main import app
from idf.client.fields import FieldMeta
from idf.client.formats import save_energy_map
from idf.server.config import Settings

runner = CliRunner()


def idf(*args: str):
    return runner.invoke(app, list(args))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_init_then_predict(server, tmp_path: Path):
    project = tmp_path / "site"
    result = idf("init", str(project), "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert Path(created["energy_map"]).is_file()
    # the generated config is a valid server config
    assert Settings.load(project / "idf.toml").port == 50051
    out = tmp_path / "forecast.npy"
    result = idf(
        "predict",
        "--energy-map",
        created["energy_map"],
        "--steps",
        "20",
        "--out",
        str(out),
        "--server",
        server.target,
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    frames = np.load(out)
    assert frames.shape == (20, 128, 128) and frames.dtype == np.float32
    assert abs(summary["total_relative_change"]) < 20 * 2.0**-24  # periodic: conserved


def test_predict_chunks_large_requests_and_matches_one_call(server, tmp_path: Path):
    field = np.random.default_rng(0).random((1024, 1024)).astype(np.float32)  # 4 MiB a frame
    path = tmp_path / "big.npy"
    np.save(path, field)
    out = tmp_path / "out.npy"
    result = idf(
        "predict",
        "--energy-map",
        str(path),
        "--steps",
        "6",
        "--out",
        str(out),
        "--server",
        server.target,
    )
    assert result.exit_code == 0, result.output
    from idf.engine.forecast.physics import TransportSpec, physics_forecast

    local = physics_forecast([field], 6, TransportSpec(diffusivity=0.1))
    np.testing.assert_array_equal(np.load(out), local.frames)


def test_npz_metadata_is_used(server, tmp_path: Path):
    path = tmp_path / "map.npz"
    save_energy_map(
        path, np.ones((8, 8)), FieldMeta(spacing=(0.5, 0.5), boundary="zero-flux", units="J/m3")
    )
    out = tmp_path / "o.npy"
    result = idf(
        "predict",
        "--energy-map",
        str(path),
        "--steps",
        "1",
        "--out",
        str(out),
        "--server",
        server.target,
        "--json",
    )
    assert result.exit_code == 0, result.output
    # dt for kappa = 0.1, h = 0.5 in 2D at CFL 0.9: 0.9 / (2 * 2 * 0.1 / 0.25)
    assert json.loads(result.output)["frame_interval"] == pytest.approx(0.9 / 1.6)


def test_health(server):
    result = idf("health", "--server", server.target, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == {"server": server.target, "status": "SERVING"}


def _bad(tmp_path: Path, name: str, array: np.ndarray) -> str:
    path = tmp_path / name
    np.save(path, array)
    return str(path)


def _junk(path: Path) -> str:
    path.write_bytes(b"not numpy")
    return str(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: str(p / "missing.npy"), "no such file"),
        (lambda p: _bad(p, "text.npy", np.array(["a", "b"])), "must be numeric"),
        (lambda p: _bad(p, "bool.npy", np.array([True, False])), "must be numeric"),
        (lambda p: _bad(p, "scalar.npy", np.array(3.0)), "at least one axis"),
        (lambda p: _bad(p, "empty.npy", np.zeros((0, 4))), "non-empty"),
        (lambda p: _bad(p, "4d.npy", np.zeros((2, 2, 2, 2))), "at most 3 axes"),
        (lambda p: _junk(p / "junk.npy"), "not a readable"),
    ],
    ids=["missing", "text", "bool", "scalar", "empty", "4d", "junk"],
)
def test_bad_files_fail_clearly(server, tmp_path: Path, make, message):
    path = make(tmp_path)
    result = idf(
        "predict",
        "--energy-map",
        path,
        "--steps",
        "1",
        "--out",
        str(tmp_path / "o.npy"),
        "--server",
        server.target,
    )
    assert result.exit_code == 1
    assert message in result.output


def test_rejected_request_exits_4_with_the_reason(server, tmp_path: Path):
    path = _bad(tmp_path, "ok.npy", np.ones((8, 8)))
    result = idf(
        "predict",
        "--energy-map",
        path,
        "--steps",
        "1",
        "--out",
        str(tmp_path / "o.npy"),
        "--dt",
        "50",
        "--server",
        server.target,
    )
    assert result.exit_code == 4
    assert "transport.dt" in result.output and "unstable" in result.output


def test_unreachable_server_exits_3(tmp_path: Path):
    path = _bad(tmp_path, "ok.npy", np.ones((8, 8)))
    target = f"127.0.0.1:{_free_port()}"
    result = idf(
        "predict",
        "--energy-map",
        path,
        "--steps",
        "1",
        "--out",
        str(tmp_path / "o.npy"),
        "--server",
        target,
        "--json",
    )
    assert result.exit_code == 3
    assert "cannot reach the server" in json.loads(result.stderr)["error"]
    assert idf("health", "--server", target).exit_code == 3


def test_init_refuses_a_non_empty_folder(tmp_path: Path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep me")
    result = idf("init", str(tmp_path / "x"))
    assert result.exit_code == 1 and "already exists" in result.output
    assert (tmp_path / "x" / "file").read_text() == "keep me"


def test_every_command_has_help():
    for command in ("serve", "health", "init", "predict", "sample", "diffuse", "train"):
        result = idf(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_the_console_script_runs_and_uses_idf_server(server):
    env = {**os.environ, "IDF_SERVER": server.target}
    exe = Path(sys.executable).parent / "idf"
    result = subprocess.run(
        [str(exe), "health", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "SERVING"
