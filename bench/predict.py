"""Predict and regime detection: forecast latency per frame, detector latency per window, and the
detector's held-out evaluation against a constant predictor, and the forecast baselines a learned
forecaster must beat (persistence, the solver at half resolution) — in one run.

    python bench/predict.py [--skip-evaluation] [--out results.json]

Forecast: the physics forecaster (the learned NVP forecaster is not built yet), one frame = one
solver step, at 64² and 128². Detector: `regime_detector.decide` on 96-frame windows at 32² and
64². Evaluation: the held-out Kolmogorov trajectories of `regime_detector.HELD_OUT_RE` ×
`HELD_OUT_SEEDS` regenerated and labelled by their dynamics, the shipped detector's balanced
accuracy and confusion matrix, next to the best constant predictor (balanced accuracy 1/3).
Prints one JSON document.
"""

from __future__ import annotations

from report import emit  # noqa: I001 - bench/ is the script's folder

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from idf.engine import models, regime_detector, regimes
from idf.engine.forecast import TransportSpec, physics_forecast
from idf.engine.navier_stokes import FlowSpec, Solver, random_vorticity


def forecast_latency(side: int, frames: int = 200) -> dict:
    u = np.random.default_rng(0).random((side, side)).astype(np.float32)
    spec = TransportSpec(diffusivity=0.2, velocity=(0.3, 0.1))
    physics_forecast([u], 5, spec, device="cpu")
    t = time.perf_counter()
    physics_forecast([u], frames, spec, device="cpu")
    return {"model": "physics-advection-diffusion", "side": side, "ms_per_frame": 1e3 * (time.perf_counter() - t) / frames}


def detector_latency(side: int, repeats: int = 10) -> dict:
    solver = Solver(FlowSpec(resolution=side, reynolds=60))
    every = round(0.5 / solver.dt)
    frames = solver.advance(random_vorticity(side, 1), 96 * every, frame_every=every).float().numpy()
    detector = models.load_detector(models.DEFAULT_DETECTOR)
    regime_detector.decide(detector, frames, every * solver.dt)
    t = time.perf_counter()
    for _ in range(repeats):
        regime_detector.decide(detector, frames, every * solver.dt)
    return {"side": side, "frames": 96, "ms_per_window": 1e3 * (time.perf_counter() - t) / repeats}


def evaluation() -> dict:
    detector = models.load_detector(models.DEFAULT_DETECTOR)
    x, y, runs = regime_detector.dataset(regime_detector.HELD_OUT_RE, regime_detector.HELD_OUT_SEEDS)
    m = regime_detector.confusion(detector, x, y)
    constant = max(regime_detector.balanced_accuracy(_constant(y, k)) for k in range(3))
    return {"classes": detector.classes, "windows": int(len(y)), "balanced_accuracy": regime_detector.balanced_accuracy(m),
            "confusion": m.tolist(), "constant_predictor_balanced_accuracy": constant, "runs": runs}


def _constant(y: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((3, 3), dtype=int)
    for yi in y:
        m[yi, k] += 1
    return m


def forecast_baselines(side: int = 64, starts: int = 4, horizon: int = 50, interval: float = 0.5) -> list[dict]:
    """What a learned forecaster will have to beat: persistence and the same solver at half
    resolution (spectral down- and up-sampling), on held-out chaotic runs. nRMSE = rms error /
    rms truth at horizons 1, 10, 50 frames; high-correlation time = frames until the Pearson
    correlation with the truth drops below 0.8."""
    rows = []
    for re, seed in ((50.0, 100), (75.0, 100)):
        fine = Solver(FlowSpec(resolution=side, reynolds=re))
        coarse = Solver(FlowSpec(resolution=side // 2, reynolds=re, dt=fine.dt))
        every = round(interval / fine.dt)
        w = fine.evolve(random_vorticity(side, seed), 150)
        truth_all = fine.advance(w, (starts * 10 + horizon) * every, frame_every=every).numpy()
        scores: dict[str, list[np.ndarray]] = {"persistence": [], "half-resolution solver": []}
        for i in range(starts):
            start, truth = truth_all[i * 10], truth_all[i * 10 + 1 : i * 10 + 1 + horizon]
            half = regimes.resample(start[None], side // 2)[0]
            run = coarse.advance(torch.as_tensor(half), horizon * every, frame_every=every).numpy()
            for name, pred in (("persistence", np.broadcast_to(start, truth.shape)),
                               ("half-resolution solver", regimes.resample(run, side))):
                scores[name].append(np.stack([_nrmse(pred, truth), _correlation(pred, truth)]))
        for name, s in scores.items():
            m = np.mean(s, axis=0)
            below = np.nonzero(m[1] < 0.8)[0]
            rows.append({"model": name, "reynolds": re, "seed": seed, "side": side,
                         **{f"nrmse_{h}": float(m[0][h - 1]) for h in (1, 10, 50)},
                         "high_correlation_frames": int(below[0]) if below.size else horizon})
    return rows


def _nrmse(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((pred - truth) ** 2, axis=(1, 2)) / np.mean(truth**2, axis=(1, 2)))


def _correlation(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    a = pred.reshape(len(pred), -1) - pred.reshape(len(pred), -1).mean(1, keepdims=True)
    b = truth.reshape(len(truth), -1) - truth.reshape(len(truth), -1).mean(1, keepdims=True)
    return np.sum(a * b, 1) / np.sqrt(np.sum(a * a, 1) * np.sum(b * b, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-evaluation", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    emit({
        "benchmark": "predict",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "device": "cpu"},
        "forecast": [forecast_latency(s) for s in (64, 128)],
        "forecast_baselines": forecast_baselines(),
        "detector": [detector_latency(s) for s in (32, 64)],
        "evaluation": None if args.skip_evaluation else evaluation(),
    }, args.out)


if __name__ == "__main__":
    main()
