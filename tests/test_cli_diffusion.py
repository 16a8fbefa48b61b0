"""`idf diffuse`, `idf sample --png` and `idf train diffusion` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from idf.cli.main import app
from idf.engine.flows import fieldsets

runner = CliRunner()


def idf(*args: str):
    return runner.invoke(app, list(args))


def test_diffuse_reconstructs_nan_marked_observations(server, tmp_path: Path):
    rng = np.random.default_rng(5)
    truth = fieldsets.generate("plume", rng.integers(*fieldsets.HELD_OUT_SEEDS, size=1))[0]
    mask = fieldsets.random_mask(rng, 32, 0.1)
    np.save(tmp_path / "obs.npy", np.where(mask, truth, np.nan).astype(np.float32))
    out, png = tmp_path / "mean.npy", tmp_path / "mean.png"
    result = idf(
        "diffuse",
        "--energy-map",
        str(tmp_path / "obs.npy"),
        "--out",
        str(out),
        "--png",
        str(png),
        "--samples",
        "4",
        "--server",
        server.target,
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["mode"] == "observations" and summary["observed_sites"] == int(mask.sum())
    mean, std = np.load(out), np.load(tmp_path / "mean.stddev.npy")
    np.testing.assert_allclose(mean[mask], truth[mask], atol=1e-4)
    assert std.shape == (32, 32)
    assert Image.open(png).size[0] > 256  # two tiles: mean | stddev


def test_diffuse_with_an_external_field_generates(server, tmp_path: Path):
    np.save(tmp_path / "h.npy", np.full((32, 32), 0.1, np.float32))
    result = idf(
        "diffuse",
        "--energy-map",
        str(tmp_path / "h.npy"),
        "--out",
        str(tmp_path / "x.npy"),
        "--samples",
        "2",
        "--guidance-scale",
        "0.5",
        "--server",
        server.target,
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["mode"] == "external-field"
    assert np.load(tmp_path / "x.npy").shape == (2, 32, 32)


def test_sample_writes_a_png(server, tmp_path: Path):
    png = tmp_path / "s.png"
    result = idf(
        "sample",
        "--model",
        "phi4",
        "--shape",
        "16,16",
        "--steps",
        "20",
        "--count",
        "3",
        "--out",
        str(tmp_path / "s.npy"),
        "--png",
        str(png),
        "--server",
        server.target,
        "--json",
    )
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(png))
    assert image.shape[2] == 3 and image.shape[1] > image.shape[0]  # three tiles in a row


def test_train_diffusion_resumes_and_refuses_other_options(tmp_path: Path):
    out = tmp_path / "m.safetensors"
    args = [
        "train",
        "diffusion",
        "--out",
        str(out),
        "--side",
        "8",
        "--batch",
        "2",
        "--width",
        "8",
        "--json",
    ]
    first = idf(*args, "--steps", "2")
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in first.output.splitlines()]
    assert lines[-2]["step"] == 2 and "reproduce" in lines[-1]
    more = idf(*args, "--steps", "3")
    assert more.exit_code == 0, more.output
    assert [json.loads(line).get("step") for line in more.output.splitlines()][
        0
    ] == 3  # resumed, not restarted
    other = idf(*args[:-1], "--steps", "3", "--seed", "9")
    assert other.exit_code == 1 and "different configuration" in other.output
