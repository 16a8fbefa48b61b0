"""Field reconstruction from sparse observations: K posterior samples by guided reverse diffusion
(the sensor-conditioned denoiser plus observation-likelihood guidance, `idf.engine.reverse`),
their mean and per-pixel standard deviation; and the held-out evaluation against the baselines."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from idf.engine import baselines, fieldsets, reverse
from idf.engine.denoiser import LearnedDenoiser
from idf.engine.errors import ParameterError

DEFAULT_SAMPLES = 16
DEFAULT_STEPS = 32


@dataclass
class Reconstruction:
    mean: np.ndarray  # (H, W) float32
    stddev: np.ndarray
    samples: np.ndarray  # (K, H, W)
    evaluations: int  # denoiser evaluations × fields
    compute_seconds: float


def check_observations(model: LearnedDenoiser, shape: tuple[int, ...], values: np.ndarray, mask: np.ndarray,
                       noise_std: float) -> None:
    side = model.side
    if tuple(shape) != (side, side):
        raise ParameterError("shape", f"this model reconstructs {side}x{side} fields, got {list(shape)}")
    if mask.shape != (side, side) or values.shape != (side, side):
        raise ParameterError("mask", f"observations must cover a {side}x{side} grid")
    if not mask.any():
        raise ParameterError("observations", "at least one observed site is needed")
    if not np.all(np.isfinite(values[mask])):
        raise ParameterError("observations", "observed values contain NaN or Inf")
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ParameterError("noise_std", f"must be finite and >= 0, got {noise_std}")


def reconstruct(model: LearnedDenoiser, values: np.ndarray, mask: np.ndarray, *, noise_std: float = 0.0,
                count: int = DEFAULT_SAMPLES, steps: int = DEFAULT_STEPS, method: str = reverse.STOCHASTIC,
                seed: int = 0, device: torch.device | str = "cpu",
                progress: Callable[[int, int, float, torch.Tensor], None] = lambda i, n, s, x: None,
                should_stop: Callable[[], bool] = lambda: False) -> Reconstruction:
    mask = np.asarray(mask, dtype=bool)
    values = np.where(mask, np.asarray(values, dtype=np.float64), 0.0)
    check_observations(model, mask.shape, values, mask, noise_std)
    t0 = time.perf_counter()
    g = reverse.Guidance(values=torch.as_tensor(values, dtype=torch.float32, device=device)[None, None],
                         mask=torch.as_tensor(mask, dtype=torch.float32, device=device)[None, None],
                         noise_std=noise_std)
    x, evaluations = reverse.sample(model, count, steps=steps, method=method, guidance=g, seed=seed,
                                    device=device, progress=progress, should_stop=should_stop)
    s = x[:, 0].double().cpu().numpy()
    return Reconstruction(s.mean(0).astype(np.float32), s.std(0, ddof=1 if count > 1 else 0).astype(np.float32),
                          s.astype(np.float32), evaluations, time.perf_counter() - t0)


def relative_l2(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


def coverage(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the unobserved sites whose truth lies within mean ± 2·std."""
    free = ~mask
    return float(np.mean(np.abs(truth[free] - mean[free]) <= 2 * std[free]))


@dataclass
class Evaluation:
    fraction: float
    fields: int
    diffusion_rel_l2: float
    linear_rel_l2: float
    kriging_rel_l2: float
    diffusion_coverage: float
    kriging_coverage: float
    diffusion_seconds_per_field: float
    linear_seconds_per_field: float
    kriging_seconds_per_field: float


def evaluate(model: LearnedDenoiser, fraction: float, fields: int, *, seed: int = 0, count: int = DEFAULT_SAMPLES,
             steps: int = DEFAULT_STEPS, method: str = reverse.STOCHASTIC,
             covariance: baselines.StationaryCovariance | None = None,
             seeds: tuple[int, int] = fieldsets.HELD_OUT_SEEDS) -> Evaluation:
    """Held-out evaluation: `fields` fields from HELD_OUT_SEEDS (never used in training), a random
    `fraction` of sites observed exactly; means over fields of relative L2 and ±2σ coverage."""
    family = model.metadata.get("family", fieldsets.PLUME)
    rng = np.random.default_rng([seed, int(fraction * 1e6)])
    truth = fieldsets.generate(family, rng.integers(*seeds, size=fields), model.side)
    if covariance is None:
        covariance = kriging_covariance(family, model.side)
    rows: dict[str, list[float]] = {k: [] for k in ("d", "l", "k", "dc", "kc")}
    times = {"d": 0.0, "l": 0.0, "k": 0.0}
    for i, x in enumerate(truth):
        mask = fieldsets.random_mask(rng, model.side, fraction)
        t = time.perf_counter()
        r = reconstruct(model, x, mask, count=count, steps=steps, method=method, seed=seed * 7919 + i)
        times["d"] += time.perf_counter() - t
        t = time.perf_counter()
        lin = baselines.linear_interpolation(x, mask)
        times["l"] += time.perf_counter() - t
        t = time.perf_counter()
        km, ks = covariance.kriging(x, mask)
        times["k"] += time.perf_counter() - t
        rows["d"].append(relative_l2(r.mean, x))
        rows["l"].append(relative_l2(lin, x))
        rows["k"].append(relative_l2(km, x))
        rows["dc"].append(coverage(r.mean, r.stddev, x, mask))
        rows["kc"].append(coverage(km, ks, x, mask))
    m = {k: float(np.mean(v)) for k, v in rows.items()}
    return Evaluation(fraction, fields, m["d"], m["l"], m["k"], m["dc"], m["kc"],
                      times["d"] / fields, times["l"] / fields, times["k"] / fields)


def kriging_covariance(family: str, side: int, fields: int = 4096) -> baselines.StationaryCovariance:
    """The family's covariance from `fields` training fields (a fixed, seed-0 draw)."""
    rng = np.random.default_rng(12345)
    return baselines.StationaryCovariance.estimate(
        fieldsets.generate(family, rng.integers(*fieldsets.TRAIN_SEEDS, size=fields), side))
