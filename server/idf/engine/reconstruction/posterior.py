"""Field reconstruction from sparse observations: K posterior samples by guided reverse diffusion
(the sensor-conditioned denoiser plus observation-likelihood guidance, `idf.engine.sampling.reverse`),
their mean and per-pixel standard deviation. (The held-out evaluation against the baselines:
`idf.engine.training.evaluation`.)"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from idf.engine.cost import LEARNED_WORK_WEIGHT, Cost
from idf.engine.errors import ParameterError
from idf.engine.sampling import reverse
from idf.engine.sampling.denoiser import LearnedDenoiser

DEFAULT_SAMPLES = 16
DEFAULT_STEPS = 32
MAX_OBSERVED = (
    1e30  # |observed value| and noise_std: float32 range with room for the network's arithmetic
)


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


def check_observations(
    model: LearnedDenoiser, values: np.ndarray, mask: np.ndarray, noise_std: float
) -> None:
    side = model.side
    if mask.shape != (side, side) or values.shape != (side, side):
        raise ParameterError(
            "shape", f"this model reconstructs {side}x{side} fields, got {list(mask.shape)}"
        )
    if not mask.any():
        raise ParameterError("observations", "at least one observed site is needed")
    if not np.all(np.isfinite(values[mask])):
        raise ParameterError("observations", "observed values contain NaN or Inf")
    if float(np.max(np.abs(values[mask]))) > MAX_OBSERVED:
        raise ParameterError(
            "observations",
            f"observed values must be within +-{MAX_OBSERVED:g} (the model computes in float32)",
        )
    if not (math.isfinite(noise_std) and 0 <= noise_std <= MAX_OBSERVED):
        raise ParameterError(
            "noise_std", f"must be finite and in [0, {MAX_OBSERVED:g}], got {noise_std:.4g}"
        )


def estimate(
    shape: Sequence[int], count: int = DEFAULT_SAMPLES, steps: int = DEFAULT_STEPS
) -> Cost:
    """The cost of `reconstruct` (or reverse-diffusion `Sample`) of `count` fields of `shape` in
    `steps` noise levels (see idf.engine.cost). Heun takes two denoiser evaluations per level but
    one at the last (σ = 0): count x (2 steps - 1) evaluations of every site, what the call
    reports. Pure arithmetic that never raises (counts below 1 count as 1)."""
    sites = math.prod(int(n) for n in shape)
    count, steps = max(1, int(count)), max(1, int(steps))
    return Cost(
        site_updates=count * (2 * steps - 1) * sites,
        state_bytes=count * sites * (DENOISER_BYTES_PER_SITE + OUTPUT_BYTES_PER_SITE),
        weight=LEARNED_WORK_WEIGHT,
    )


def reconstruct(
    model: LearnedDenoiser,
    values: np.ndarray,
    mask: np.ndarray,
    *,
    noise_std: float = 0.0,
    count: int = DEFAULT_SAMPLES,
    steps: int = DEFAULT_STEPS,
    method: str = reverse.STOCHASTIC,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int, float, torch.Tensor], None] = lambda i, n, s, x: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Reconstruction:
    mask = np.asarray(mask, dtype=bool)
    values = np.where(mask, np.asarray(values, dtype=np.float64), 0.0)
    check_observations(model, values, mask, noise_std)
    t0 = time.perf_counter()
    g = reverse.Guidance(
        values=torch.as_tensor(values, dtype=torch.float32, device=device)[None, None],
        mask=torch.as_tensor(mask, dtype=torch.float32, device=device)[None, None],
        noise_std=noise_std,
    )
    x, evaluations = reverse.sample(
        model,
        count,
        steps=steps,
        method=method,
        guidance=g,
        seed=seed,
        device=device,
        progress=progress,
        should_stop=should_stop,
    )
    s = x[:, 0].double().cpu().numpy()
    return Reconstruction(
        s.mean(0).astype(np.float32),
        s.std(0, ddof=1 if count > 1 else 0).astype(np.float32),
        s.astype(np.float32),
        evaluations,
        time.perf_counter() - t0,
    )
