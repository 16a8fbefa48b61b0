"""Training, calibration and scoring of the NVP forecaster (`idf train nvp`).

Data: Kolmogorov trajectories simulated by the product's solver at 64² (frames exactly
nvp.INTERVAL apart after a spin-up), one per (Reynolds number, seed) of the training split.
Splits are by trajectory: training TRAIN_RE × TRAIN_SEEDS, validation VALIDATION (used only to
calibrate the ensemble noise), held-out HELD_OUT (bench/predict.py; never seen in training) — the
Reynolds numbers and seeds of the three splits are disjoint.

Objective: multi-step rollout. Step k draws `batch` (trajectory, start) pairs from generators
seeded by (seed, k), rolls the forecaster out `rollout` frames from the two frames before the
start (one frame during the first `one_step_fraction` of the steps) and minimises the mean squared
error of every rolled-out frame over s², with gradients through the coarse solver and every
earlier step. EMA weights are what ships. Deterministic given the seed; checkpoints every
`checkpoint_every` steps, resumed bit for bit (`idf.engine.checkpoints`).

After the last step the ensemble noise is calibrated on the validation trajectories: the value
of NOISE_GRID whose ensembles' spread-skill ratio is closest to 1 on average over the horizons
(mean |ln ratio|).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from idf.engine.checkpoints import deterministic, optimizer_step, optimizer_tensors, resume
from idf.engine.errors import Cancelled, ParameterError
from idf.engine.flows.navier_stokes import FlowSpec, Solver, exact_interval_spec, random_vorticity
from idf.engine.forecast import nvp
from idf.engine.unet import UNet

TRAIN_RE = (38.0, 42.0, 46.0, 55.0, 62.0, 70.0, 82.0, 95.0)
TRAIN_SEEDS = (0, 1)
VALIDATION = ((58.0, 50), (68.0, 51))
HELD_OUT = ((50.0, 100), (75.0, 100))
NOISE_GRID = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
START_SPACING = 10  # frames between the starts of scored forecasts on one trajectory


@dataclass(frozen=True)
class NvpConfig:
    steps: int = 2000
    batch: int = 8
    rollout: int = 4
    one_step_fraction: float = 0.2
    learning_rate: float = 1e-3
    warmup: int = 100
    ema_halflife: int = 200
    width: int = 16
    multipliers: tuple[int, ...] = (1, 2, 2)
    seed: int = 0
    train_re: tuple[float, ...] = TRAIN_RE
    train_seeds: tuple[int, ...] = TRAIN_SEEDS
    frames: int = 240  # per training trajectory
    spin_up: float = 100.0
    members: int = 8  # ensemble size used for calibration
    calibration_starts: int = 3
    calibration_horizon: int = 50
    checkpoint_every: int = 100
    threads: int = 0


@dataclass(frozen=True)
class NvpProgress:
    stage: str  # "simulating" | "training" | "calibrating"
    step: int
    total: int
    loss: float
    seconds: float


def trajectory(
    reynolds: float, seed: int, frames: int, spin_up: float = 100.0, device: str = "cpu"
) -> np.ndarray:
    """`frames` vorticity frames (float32, SIDE²) exactly nvp.INTERVAL apart, after `spin_up`."""
    spec, every = exact_interval_spec(
        FlowSpec(resolution=nvp.SIDE, reynolds=reynolds), nvp.INTERVAL
    )
    solver = Solver(spec, device=device)
    w = (
        solver.evolve(random_vorticity(nvp.SIDE, seed), spin_up)
        if spin_up > 0
        else random_vorticity(nvp.SIDE, seed)
    )
    return solver.advance(w, frames * every, frame_every=every).float().cpu().numpy()


def _check(config: NvpConfig) -> None:
    for name in (
        "steps",
        "batch",
        "rollout",
        "width",
        "checkpoint_every",
        "members",
        "calibration_starts",
        "calibration_horizon",
    ):
        if getattr(config, name) < 1:
            raise ParameterError(name, f"must be >= 1, got {getattr(config, name)}")
    if config.frames < config.rollout + 2:
        raise ParameterError("frames", f"must be at least rollout + 2 = {config.rollout + 2}")
    for re in config.train_re:
        if not nvp.RE_RANGE[0] <= re <= nvp.RE_RANGE[1]:
            raise ParameterError("train_re", f"{re} is outside the model's range {nvp.RE_RANGE}")
    held = {r for r, _ in HELD_OUT} | {r for r, _ in VALIDATION}
    if held & set(config.train_re):
        raise ParameterError(
            "train_re",
            f"{sorted(held & set(config.train_re))} belong to the validation or held-out split",
        )


def train(
    config: NvpConfig,
    out: Path,
    *,
    resume: bool = True,
    command: str = "",
    progress: Callable[[NvpProgress], None] = lambda p: None,
    should_stop: Callable[[], bool] = lambda: False,
    report_every: int = 20,
) -> Path:
    """Simulate, train (or resume) and calibrate into `out`. Raises Cancelled after saving when stopped."""
    _check(config)
    deterministic(config.threads)
    out = Path(out)
    t0 = time.perf_counter()
    runs = [(re, s) for re in config.train_re for s in config.train_seeds]
    data, res = [], []
    for i, (re, s) in enumerate(runs):
        if should_stop():
            raise Cancelled(message="stopped while simulating training data; nothing to save yet")
        progress(NvpProgress("simulating", i, len(runs), float("nan"), time.perf_counter() - t0))
        data.append(trajectory(re, s, config.frames, config.spin_up))
        res.append(re)
    frames = torch.from_numpy(np.stack(data))  # (R, T, n, n)
    reynolds = torch.tensor(res, dtype=torch.float32)
    scale = float(frames.double().pow(2).mean().sqrt())
    torch.manual_seed(config.seed)
    net = UNet(in_channels=3, out_channels=1, width=config.width, multipliers=config.multipliers)
    info = {
        "config": asdict(config),
        "command": command,
        "flow": "kolmogorov",
        "side": nvp.SIDE,
        "interval": nvp.INTERVAL,
        "history": nvp.HISTORY,
        "reynolds_range": list(nvp.RE_RANGE),
    }
    model = nvp.NvpForecaster(net, scale, 0.0, info)
    ema = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    start = _restore(out, config, model, ema, opt) if resume and out.exists() else 0
    decay = 0.5 ** (1 / config.ema_halflife)
    losses: list[float] = []
    model.train()
    for step in range(start, config.steps):
        if should_stop():
            _save(out, ema, model, opt, step, config)
            raise Cancelled(
                message=f"training stopped at step {step}; resume with the same command"
            )
        loss = _rollout_loss(model, frames, reynolds, config, step)
        lr = config.learning_rate * min(1.0, (step + 1) / config.warmup)
        losses.append(optimizer_step(opt, loss, model, ema, lr, decay))
        done = step + 1
        if done % report_every == 0 or done == config.steps:
            progress(
                NvpProgress(
                    "training", done, config.steps, float(np.mean(losses)), time.perf_counter() - t0
                )
            )
            losses = []
        if done % config.checkpoint_every == 0 and done < config.steps:
            _save(out, ema, model, opt, done, config)
    if start < config.steps or "calibration" not in ema.metadata:
        ema.eval()
        ema.noise, report = calibrate(
            ema,
            config,
            progress=lambda i, n: progress(
                NvpProgress("calibrating", i, n, float("nan"), time.perf_counter() - t0)
            ),
        )
        ema.metadata["calibration"] = report
        _save(out, ema, model, opt, config.steps, config)
    return out


def _rollout_loss(
    model: nvp.NvpForecaster,
    frames: torch.Tensor,
    reynolds: torch.Tensor,
    config: NvpConfig,
    step: int,
) -> torch.Tensor:
    rollout = 1 if step < config.one_step_fraction * config.steps else config.rollout
    rng = np.random.default_rng([config.seed, step])
    traj = torch.from_numpy(rng.integers(frames.shape[0], size=config.batch))
    start = torch.from_numpy(rng.integers(1, frames.shape[1] - rollout, size=config.batch))
    previous, present, re = frames[traj, start - 1], frames[traj, start], reynolds[traj]
    loss = frames.new_zeros(())
    for r in range(rollout):
        nxt = model(previous, present, re)
        loss = loss + (nxt - frames[traj, start + 1 + r]).pow(2).mean() / model.scale**2
        previous, present = present, nxt
    return loss / rollout


# scoring ----------------------------------------------------------------------------------------
def score(
    predict: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None]],
    truth: np.ndarray,
    starts: int,
    horizon: int,
    members: int = 0,
) -> dict[str, np.ndarray]:
    """Per-horizon scores of a forecaster over `starts` forecasts from one trajectory `truth`
    (T, n, n): forecast i starts after frames [i·S, i·S + 1] (S = START_SPACING) and is compared
    with the next `horizon` frames. `predict(history, horizon)` returns (mean, stddev or None).

    nrmse: √(mean squared error / mean squared truth), pooled over starts; correlation: mean
    Pearson correlation; spread_skill: √((M+1)/M · mean variance) / rmse (M = members, the
    finite-ensemble correction); coverage: share of pixels within ±2σ."""
    err, ref, var, cover, corr = [], [], [], [], []
    for i in range(starts):
        a = i * START_SPACING
        history, target = (
            truth[a : a + nvp.HISTORY],
            truth[a + nvp.HISTORY : a + nvp.HISTORY + horizon],
        )
        if len(target) < horizon:
            raise ValueError(
                f"truth has {len(truth)} frames; {starts} starts of horizon {horizon} need "
                f"{(starts - 1) * START_SPACING + nvp.HISTORY + horizon}"
            )
        mean, sd = predict(history, horizon)
        d = (mean - target).astype(np.float64)
        err.append(np.mean(d**2, axis=(1, 2)))
        ref.append(np.mean(target.astype(np.float64) ** 2, axis=(1, 2)))
        corr.append(_correlation(mean, target))
        if sd is not None:
            var.append(np.mean(sd.astype(np.float64) ** 2, axis=(1, 2)))
            cover.append(np.mean(np.abs(d) <= 2 * sd, axis=(1, 2)))
    out = {"nrmse": np.sqrt(np.mean(err, 0) / np.mean(ref, 0)), "correlation": np.mean(corr, 0)}
    if var:
        factor = (members + 1) / members if members else 1.0
        out["spread_skill"] = np.sqrt(factor * np.mean(var, 0) / np.mean(err, 0))
        out["coverage"] = np.mean(cover, 0)
    return out


def _correlation(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    a = pred.reshape(len(pred), -1).astype(np.float64)
    b = truth.reshape(len(truth), -1).astype(np.float64)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return np.sum(a * b, 1) / np.sqrt(np.sum(a * a, 1) * np.sum(b * b, 1))


def half_resolution_forecast(history: np.ndarray, steps: int, reynolds: float) -> np.ndarray:
    """The baseline: the product's solver on the present frame spectrally truncated to half the
    resolution, with the full-resolution run's time step, up-sampled back; (steps, SIDE, SIDE)."""
    fine, every = exact_interval_spec(
        FlowSpec(resolution=nvp.SIDE, reynolds=reynolds), nvp.INTERVAL
    )
    solver = Solver(FlowSpec(resolution=nvp.SIDE // 2, reynolds=reynolds, dt=fine.dt))
    start = nvp.resample(torch.as_tensor(history[-1], dtype=torch.float64), nvp.SIDE // 2)
    return (
        nvp.resample(solver.advance(start, steps * every, frame_every=every), nvp.SIDE)
        .float()
        .numpy()
    )


def ensemble_predictor(
    model: nvp.NvpForecaster,
    reynolds: float,
    members: int,
    noise: float | None = None,
    seed: int = 0,
) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray | None]]:
    def predict(history: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray | None]:
        r = nvp.forecast(model, history, horizon, reynolds, members=members, noise=noise, seed=seed)
        return r.frames, r.stddev

    return predict


def calibrate(
    model: nvp.NvpForecaster,
    config: NvpConfig,
    progress: Callable[[int, int], None] = lambda i, n: None,
) -> tuple[float, dict[str, Any]]:
    """The NOISE_GRID value with spread-skill closest to 1 on the validation runs, and the record."""
    need = (
        (config.calibration_starts - 1) * START_SPACING + nvp.HISTORY + config.calibration_horizon
    )
    runs = [(re, trajectory(re, s, need, config.spin_up)) for re, s in VALIDATION]
    table = {}
    for i, eps in enumerate(NOISE_GRID):
        progress(i, len(NOISE_GRID))
        ratios = []
        for re, truth in runs:
            s = score(
                ensemble_predictor(model, re, config.members, eps),
                truth,
                config.calibration_starts,
                config.calibration_horizon,
                config.members,
            )
            ratios.append(s["spread_skill"])
        r = np.mean(ratios, 0)
        table[repr(eps)] = {
            "mean_abs_log_ratio": float(np.mean(np.abs(np.log(r)))),
            "ratio_first": float(r[0]),
            "ratio_last": float(r[-1]),
        }
    best = min(NOISE_GRID, key=lambda e: table[repr(e)]["mean_abs_log_ratio"])
    progress(len(NOISE_GRID), len(NOISE_GRID))
    return best, {"noise": best, "validation": [list(v) for v in VALIDATION], "grid": table}


def _save(
    out: Path,
    ema: nvp.NvpForecaster,
    model: nvp.NvpForecaster,
    opt: torch.optim.Adam,
    step: int,
    config: NvpConfig,
) -> None:
    nvp.save(
        ema,
        out,
        extra={"step": step, "steps": config.steps},
        tensors=optimizer_tensors(opt, model, step),
    )


def _restore(
    out: Path,
    config: NvpConfig,
    model: nvp.NvpForecaster,
    ema: nvp.NvpForecaster,
    opt: torch.optim.Adam,
) -> int:
    saved, tensors = nvp.load(out)
    step = resume(out, config, saved, tensors, model, ema, opt)
    ema.noise, ema.metadata = saved.noise, saved.metadata
    return step
