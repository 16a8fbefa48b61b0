"""Predict and regime detection: forecast latency per frame, detector latency per window, and the
detector's held-out evaluation against a constant predictor, and the learned NVP forecaster's
held-out evaluation against persistence and the solver at half resolution — in one run.

    python bench/predict.py [--skip-evaluation] [--out results.json]

Forecast latency: the physics forecaster (one frame = one solver step) at 64² and 128²; the NVP
forecaster (one frame = 0.5 time units) at 64², its only resolution, with 1 and 16 members.
Detector: `regime_detector.decide` on 96-frame windows at 32² and 64². Evaluation: the held-out Kolmogorov trajectories of `regime_detector.HELD_OUT_RE` ×
`HELD_OUT_SEEDS` regenerated and labelled by their dynamics, the shipped detector's balanced
accuracy and confusion matrix, next to the best constant predictor (balanced accuracy 1/3).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from report import emit  # noqa: I001 - bench/ is the script's folder

from idf.engine import models
from idf.engine.flows.navier_stokes import FlowSpec, Solver, random_vorticity
from idf.engine.forecast import nvp
from idf.engine.forecast.physics import TransportSpec, physics_forecast
from idf.engine.regimes import detector as regime_detector
from idf.engine.training import nvp as nvp_training


def forecast_latency(side: int, frames: int = 200) -> dict:
    u = np.random.default_rng(0).random((side, side)).astype(np.float32)
    spec = TransportSpec(diffusivity=0.2, velocity=(0.3, 0.1))
    physics_forecast([u], 5, spec, device="cpu")
    t = time.perf_counter()
    physics_forecast([u], frames, spec, device="cpu")
    return {
        "model": "physics-advection-diffusion",
        "side": side,
        "ms_per_frame": 1e3 * (time.perf_counter() - t) / frames,
    }


def detector_latency(side: int, repeats: int = 10) -> dict:
    solver = Solver(FlowSpec(resolution=side, reynolds=60))
    every = round(0.5 / solver.dt)
    frames = (
        solver.advance(random_vorticity(side, 1), 96 * every, frame_every=every).float().numpy()
    )
    detector = models.load_detector(models.DEFAULT_DETECTOR)
    regime_detector.decide(detector, frames, every * solver.dt)
    t = time.perf_counter()
    for _ in range(repeats):
        regime_detector.decide(detector, frames, every * solver.dt)
    return {"side": side, "frames": 96, "ms_per_window": 1e3 * (time.perf_counter() - t) / repeats}


def evaluation() -> dict:
    detector = models.load_detector(models.DEFAULT_DETECTOR)
    x, y, runs = regime_detector.dataset(
        regime_detector.HELD_OUT_RE, regime_detector.HELD_OUT_SEEDS
    )
    m = regime_detector.confusion(detector, x, y)
    constant = max(regime_detector.balanced_accuracy(_constant(y, k)) for k in range(3))
    return {
        "classes": detector.classes,
        "windows": int(len(y)),
        "balanced_accuracy": regime_detector.balanced_accuracy(m),
        "confusion": m.tolist(),
        "constant_predictor_balanced_accuracy": constant,
        "runs": runs,
    }


def _constant(y: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((3, 3), dtype=int)
    for yi in y:
        m[yi, k] += 1
    return m


def forecast_evaluation(
    starts: int = 8, horizon: int = 50, members: int = nvp.DEFAULT_MEMBERS
) -> list[dict]:
    """The NVP forecaster against persistence and the same solver at half resolution, on the
    held-out runs of `nvp_training.HELD_OUT` (Reynolds numbers and seeds never trained on), 64²,
    frames 0.5 apart. Each run: `starts` forecasts START_SPACING frames apart. nRMSE = rms error /
    rms truth at horizons 1, 10, 50 frames; high-correlation time = frames until the Pearson
    correlation with the truth drops below 0.8; for the ensemble, spread-skill ratio and ±2σ
    coverage."""
    model = models.load_forecaster(models.NVP_FORECASTER)
    rows = []
    need = (starts - 1) * nvp_training.START_SPACING + nvp.HISTORY + horizon
    for re, seed in nvp_training.HELD_OUT:
        truth = nvp_training.trajectory(re, seed, need)
        forecasters = {
            models.NVP_FORECASTER: (nvp_training.ensemble_predictor(model, re, members), members),
            "persistence": (lambda h, n: (np.broadcast_to(h[-1], (n, *h[-1].shape)), None), 0),
            "half-resolution solver": (
                lambda h, n, re=re: (nvp_training.half_resolution_forecast(h, n, re), None),
                0,
            ),
        }
        for name, (predict, m) in forecasters.items():
            s = nvp_training.score(predict, truth, starts, horizon, m)
            below = np.nonzero(s["correlation"] < 0.8)[0]
            row = {
                "model": name,
                "reynolds": re,
                "seed": seed,
                "side": nvp.SIDE,
                "starts": starts,
                **{f"nrmse_{h}": float(s["nrmse"][h - 1]) for h in (1, 10, 50)},
                "high_correlation_frames": int(below[0]) if below.size else horizon,
            }
            if "spread_skill" in s:
                row.update(
                    {
                        "members": m,
                        **{
                            f"spread_skill_{h}": float(s["spread_skill"][h - 1])
                            for h in (1, 10, 50)
                        },
                        "spread_skill_mean": float(np.mean(s["spread_skill"])),
                        **{f"coverage_{h}": float(s["coverage"][h - 1]) for h in (1, 10, 50)},
                        "coverage_mean": float(np.mean(s["coverage"])),
                    }
                )
            rows.append(row)
    return rows


def nvp_latency(members: int, frames: int = 20) -> dict:
    model = models.load_forecaster(models.NVP_FORECASTER)
    history = nvp_training.trajectory(60.0, 7, 2, spin_up=10.0)
    nvp.forecast(model, history, 2, 60.0, members=members)
    t = time.perf_counter()
    nvp.forecast(model, history, frames, 60.0, members=members)
    return {
        "model": models.NVP_FORECASTER,
        "side": nvp.SIDE,
        "members": members,
        "ms_per_frame": 1e3 * (time.perf_counter() - t) / frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-evaluation", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    emit(
        {
            "benchmark": "predict",
            "date": time.strftime("%Y-%m-%d"),
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "device": "cpu",
            },
            "forecast": [forecast_latency(s) for s in (64, 128)]
            + [nvp_latency(m) for m in (1, nvp.DEFAULT_MEMBERS)]
            + [
                {
                    "model": models.NVP_FORECASTER,
                    "side": 128,
                    "supported": False,
                    "note": "trained at 64x64 only; Predict rejects other shapes",
                }
            ],
            "forecast_evaluation": forecast_evaluation(),
            "detector": [detector_latency(s) for s in (32, 64)],
            "evaluation": None if args.skip_evaluation else evaluation(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
