"""Predict and regime detection: forecast latency per frame, detector latency per window, and the
detector's held-out evaluation against a constant predictor — in one run.

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

from idf.engine import models, regime_detector
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
        "detector": [detector_latency(s) for s in (32, 64)],
        "evaluation": None if args.skip_evaluation else evaluation(),
    }, args.out)


if __name__ == "__main__":
    main()
