"""Held-out evaluation of reconstruction against the baselines measured in the same run
(bench/diffusion.py, tests/test_reconstruction_quality.py): relative L2 of the posterior mean and
±2σ coverage of the unobserved sites, on fields of seeds never used in training."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from idf.engine.flows import fieldsets
from idf.engine.reconstruction.posterior import (
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    Reconstruction,
    reconstruct,
)
from idf.engine.sampling import reverse
from idf.engine.sampling.denoiser import LearnedDenoiser
from idf.engine.training import baselines


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


def evaluate(
    model: LearnedDenoiser,
    fraction: float,
    fields: int,
    *,
    seed: int = 0,
    count: int = DEFAULT_SAMPLES,
    steps: int = DEFAULT_STEPS,
    method: str = reverse.STOCHASTIC,
    covariance: baselines.StationaryCovariance | None = None,
    seeds: tuple[int, int] = fieldsets.HELD_OUT_SEEDS,
) -> Evaluation:
    """Held-out evaluation: `fields` fields from HELD_OUT_SEEDS (never used in training), a random
    `fraction` of sites observed exactly; means over fields of relative L2 and ±2σ coverage."""
    family = model.metadata.get("family", fieldsets.PLUME)
    rng = np.random.default_rng([seed, int(fraction * 1e6)])
    truth = fieldsets.generate(family, rng.integers(*seeds, size=fields), model.side)
    if covariance is None:
        covariance = kriging_covariance(family, model.side)
    methods: dict[
        str, Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray | None]]
    ] = {
        "diffusion": lambda x, mask, i: _mean_std(
            reconstruct(
                model, x, mask, count=count, steps=steps, method=method, seed=seed * 7919 + i
            )
        ),
        "linear": lambda x, mask, i: (baselines.linear_interpolation(x, mask), None),
        "kriging": lambda x, mask, i: covariance.kriging(x, mask),
    }
    l2: dict[str, list[float]] = {k: [] for k in methods}
    cover: dict[str, list[float]] = {k: [] for k in methods}
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
    return Evaluation(
        fraction,
        fields,
        avg["diffusion"],
        avg["linear"],
        avg["kriging"],
        float(np.mean(cover["diffusion"])),
        float(np.mean(cover["kriging"])),
        seconds["diffusion"] / fields,
        seconds["linear"] / fields,
        seconds["kriging"] / fields,
    )


def _mean_std(r: Reconstruction) -> tuple[np.ndarray, np.ndarray]:
    return r.mean, r.stddev


def kriging_covariance(
    family: str, side: int, fields: int = 4096
) -> baselines.StationaryCovariance:
    """The family's covariance from `fields` training fields (a fixed, seed-0 draw)."""
    rng = np.random.default_rng(12345)
    return baselines.StationaryCovariance.estimate(
        fieldsets.generate(family, rng.integers(*fieldsets.TRAIN_SEEDS, size=fields), side)
    )
