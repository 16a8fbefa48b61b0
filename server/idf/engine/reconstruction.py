"""Field reconstruction from sparse observations: K posterior samples by guided reverse diffusion
(the sensor-conditioned denoiser plus observation-likelihood guidance, `idf.engine.reverse`),
their mean and per-pixel standard deviation; and the held-out evaluation against the baselines."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from idf.engine import baselines, fieldsets, reverse
from idf.engine.cost import Cost
from idf.engine.denoiser import LearnedDenoiser
from idf.engine.errors import ParameterError

DEFAULT_SAMPLES = 16
DEFAULT_STEPS = 32
MAX_OBSERVED = 1e30  # |observed value| and noise_std: float32 range with room for the network's arithmetic


@dataclass
class Reconstruction:
    mean: np.ndarray  # (H, W) float32
    stddev: np.ndarray
    samples: np.ndarray  # (K, H, W)
    evaluations: int  # denoiser evaluations × fields
    compute_seconds: float


# Peak bytes per site per sample of guided reverse diffusion with the shipped U-Net (width 16,
# float32): the network's activations in flight (tens of channels, skips held for the up path),
# the state, the churn noise and the guided denoiser's outputs. Measured by
# `python -m idf.engine.cost` (about 1.7-2.0 MB per 32x32 sample for 16..256 samples).
DENOISER_BYTES_PER_SITE = 2048
OUTPUT_BYTES_PER_SITE = 16  # the samples in float64 and float32, mean and stddev


def check_observations(model: LearnedDenoiser, values: np.ndarray, mask: np.ndarray, noise_std: float) -> None:
    side = model.side
    if mask.shape != (side, side) or values.shape != (side, side):
        raise ParameterError("shape", f"this model reconstructs {side}x{side} fields, got {list(mask.shape)}")
    if not mask.any():
        raise ParameterError("observations", "at least one observed site is needed")
    if not np.all(np.isfinite(values[mask])):
        raise ParameterError("observations", "observed values contain NaN or Inf")
    if float(np.max(np.abs(values[mask]))) > MAX_OBSERVED:
        raise ParameterError("observations", f"observed values must be within +-{MAX_OBSERVED:g} (the model computes in float32)")
    if not (math.isfinite(noise_std) and 0 <= noise_std <= MAX_OBSERVED):
        raise ParameterError("noise_std", f"must be finite and in [0, {MAX_OBSERVED:g}], got {noise_std:.4g}")


def estimate(shape: Sequence[int], count: int = DEFAULT_SAMPLES, steps: int = DEFAULT_STEPS) -> Cost:
    """The cost of `reconstruct` (or reverse-diffusion `Sample`) of `count` fields of `shape` in
    `steps` noise levels (see idf.engine.cost). Heun takes two denoiser evaluations per level but
    one at the last (σ = 0): count x (2 steps - 1) evaluations of every site, what the call
    reports. Pure arithmetic that never raises (counts below 1 count as 1)."""
    sites = math.prod(int(n) for n in shape)
    count, steps = max(1, int(count)), max(1, int(steps))
    return Cost(site_updates=count * (2 * steps - 1) * sites,
                state_bytes=count * sites * (DENOISER_BYTES_PER_SITE + OUTPUT_BYTES_PER_SITE))


def reconstruct(model: LearnedDenoiser, values: np.ndarray, mask: np.ndarray, *, noise_std: float = 0.0,
                count: int = DEFAULT_SAMPLES, steps: int = DEFAULT_STEPS, method: str = reverse.STOCHASTIC,
                seed: int = 0, device: torch.device | str = "cpu",
                progress: Callable[[int, int, float, torch.Tensor], None] = lambda i, n, s, x: None,
                should_stop: Callable[[], bool] = lambda: False) -> Reconstruction:
    mask = np.asarray(mask, dtype=bool)
    values = np.where(mask, np.asarray(values, dtype=np.float64), 0.0)
    check_observations(model, values, mask, noise_std)
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
    methods: dict[str, Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray | None]]] = {
        "diffusion": lambda x, mask, i: _mean_std(reconstruct(model, x, mask, count=count, steps=steps, method=method,
                                                                 seed=seed * 7919 + i)),
        "linear": lambda x, mask, i: (baselines.linear_interpolation(x, mask), None),
        "kriging": lambda x, mask, i: covariance.kriging(x, mask),
    }
    l2 = {k: [] for k in methods}
    cover = {k: [] for k in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for i, x in enumerate(truth):
        mask = fieldsets.random_mask(rng, model.side, fraction)
        for name, run in methods.items():
            t = time.perf_counter()
            mean, std = run(x, mask, i)
            seconds[name] += time.perf_counter() - t
            l2[name].append(relative_l2(mean, x))
            if std is not None:
                cover[name].append(coverage(mean, std, x, mask))
    avg = {k: float(np.mean(v)) for k, v in l2.items()}
    return Evaluation(fraction, fields, avg["diffusion"], avg["linear"], avg["kriging"],
                      float(np.mean(cover["diffusion"])), float(np.mean(cover["kriging"])),
                      seconds["diffusion"] / fields, seconds["linear"] / fields, seconds["kriging"] / fields)


def _mean_std(r: Reconstruction) -> tuple[np.ndarray, np.ndarray]:
    return r.mean, r.stddev


def kriging_covariance(family: str, side: int, fields: int = 4096) -> baselines.StationaryCovariance:
    """The family's covariance from `fields` training fields (a fixed, seed-0 draw)."""
    rng = np.random.default_rng(12345)
    return baselines.StationaryCovariance.estimate(
        fieldsets.generate(family, rng.integers(*fieldsets.TRAIN_SEEDS, size=fields), side))
