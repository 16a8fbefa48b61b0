"""Regime detection: the window rules, DetectRegime over a real server on generated flows, bad
input, and the `idf data generate` → `idf regime` path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from idf.cli.main import app
from idf.client import InvalidArgumentError, to_field
from idf.engine import regimes
from idf.engine.navier_stokes import FlowSpec, Solver, random_vorticity
from idf.v1 import predict_pb2 as p

runner = CliRunner()


def flow(re: float, resolution: int = 32, frames: int = 100, interval: float = 0.5, seed: int = 100) -> tuple[np.ndarray, float]:
    solver = Solver(FlowSpec(resolution=resolution, reynolds=re))
    every = max(1, round(interval / solver.dt))
    w = solver.evolve(random_vorticity(resolution, seed), 150)
    return solver.advance(w, frames * every, frame_every=every).float().numpy(), every * solver.dt


def detect(client, frames: np.ndarray, interval: float, **extra) -> p.DetectRegimeResponse:
    request = p.DetectRegimeRequest(frames=[to_field(np.ascontiguousarray(f)) for f in frames], frame_interval=interval, **extra)
    return client.call(client.predict_stub.DetectRegime, request)


def test_short_windows_are_undetermined_with_the_frames_needed(client):
    frames, interval = flow(60, frames=20)
    answer = detect(client, frames, interval)
    assert answer.regime == p.REGIME_UNDETERMINED
    assert answer.frames_needed == regimes.frames_needed(20, interval) > 0
    more, _ = flow(60, frames=20 + answer.frames_needed)
    assert detect(client, more, interval).regime != p.REGIME_UNDETERMINED


@pytest.mark.parametrize("re, regime", [(10, p.REGIME_STEADY), (60, p.REGIME_CHAOTIC)])
def test_detects_generated_flows(client, re, regime):
    frames, interval = flow(re)
    answer = detect(client, frames, interval)
    assert answer.regime == regime, answer
    assert sum(q.probability for q in answer.probabilities) == pytest.approx(1.0)
    assert set(answer.features) == set(regimes.FEATURES) and answer.model == "regime-kolmogorov"


def test_any_resolution_is_resampled(client):
    frames, interval = flow(60, resolution=64)
    assert detect(client, frames, interval).regime == p.REGIME_CHAOTIC


@pytest.mark.parametrize("mutate, field", [
    (lambda f, i: (f[:1], i), "frames"),
    (lambda f, i: (f, 0.0), "frame_interval"),
    (lambda f, i: (f, 5.0), "frame_interval"),
    (lambda f, i: (np.where(np.arange(len(f))[:, None, None] == 3, np.nan, f), i), "frames[3].data"),
    (lambda f, i: (f[:, :, 0], i), "frames[0].shape"),
], ids=["one-frame", "zero-interval", "coarse-interval", "nan", "one-dimensional"])
def test_bad_windows_name_the_field(client, mutate, field):
    frames, interval = flow(10, frames=40)
    frames, interval = mutate(frames, interval)
    with pytest.raises(InvalidArgumentError) as info:
        detect(client, frames, interval)
    assert info.value.violations[0].field == field


def test_mismatched_shapes_and_unknown_model(client):
    frames, interval = flow(10, frames=40)
    request = p.DetectRegimeRequest(frames=[to_field(frames[0]), to_field(frames[1][:16, :16])], frame_interval=interval)
    with pytest.raises(InvalidArgumentError) as info:
        client.call(client.predict_stub.DetectRegime, request)
    assert info.value.violations[0].field == "frames[1].shape"
    with pytest.raises(InvalidArgumentError) as info:
        detect(client, frames, interval, model="nope")
    assert info.value.violations[0].field == "model"


def test_generate_then_detect_from_the_cli(server, tmp_path: Path):
    out = tmp_path / "run.h5"
    made = runner.invoke(app, ["data", "generate", "--out", str(out), "--re", "60", "--resolution", "32",
                               "--duration", "50", "--spin-up", "150", "--json"])
    assert made.exit_code == 0, made.output
    summary = json.loads(made.output)
    assert summary["frames"] == round(50 / summary["frame_interval"])
    answer = runner.invoke(app, ["regime", "--data", str(out), "--server", server.target, "--json"])
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)["regime"] == "chaotic"


@pytest.mark.slow
def test_held_out_trajectories_are_classified():
    """One held-out trajectory per expected regime (Re and seed never trained on), labelled by its
    own dynamics; the full held-out table is bench/predict.py's."""
    from idf.engine import models, regime_detector

    detector = models.load_detector(models.DEFAULT_DETECTOR)
    x, y, runs = regime_detector.dataset({"steady": (14.0,), "periodic": (24.0,), "chaotic": (50.0,)}, (100,))
    assert [r["regime"] for r in runs] == ["steady", "periodic", "chaotic"]
    m = regime_detector.confusion(detector, x, y)
    print(m)
    assert regime_detector.balanced_accuracy(m) >= 0.95
