"""Field families the product generates itself, for training and judging learned models.

`plume` — snapshots of the advection–diffusion equation du/dt + v·∇u = κ∇²u on a periodic
square of side L (unit grid spacing), started from 1 to 4 Gaussian releases. The snapshot is the
equation's exact solution: a Gaussian release of width s0 and amplitude a at x0 is, after time t,
a·s0²/s²·exp(−|x − x0 − v t|²/(2s²)) with s² = s0² + 2κt, summed over periodic images. (A test
checks it against the product's finite-volume solver.) The family is positive, sparse and far from
Gaussian, so the best linear estimator (kriging with the family's exact covariance) is not the
best estimator — which is what a learned prior has to show.

Every parameter is drawn from `numpy.random.default_rng(seed)`, so a seed names a field exactly;
the training, validation and evaluation seed ranges are disjoint (TRAIN_SEEDS, VALIDATION_SEEDS,
HELD_OUT_SEEDS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

PLUME = "plume"
FAMILIES = (PLUME,)
# seeds are integers; training draws from [0, 2**40), held-out evaluation from [2**40, 2**41)
TRAIN_SEEDS = (0, 2**40)
HELD_OUT_SEEDS = (2**40, 2**41)
VALIDATION_SEEDS = (2**41, 2**42)  # for choosing sampler settings; never the held-out range


@dataclass(frozen=True)
class PlumeRelease:
    amplitude: float
    centre: tuple[float, float]
    width: float  # s0, grid cells
    velocity: tuple[float, float]
    diffusivity: float
    time: float


def plume_releases(rng: np.random.Generator, side: int) -> list[PlumeRelease]:
    """The random parameters of one plume field (scale-free: lengths scale with `side`/32)."""
    scale = side / 32
    count = int(rng.integers(1, 5))
    time = float(rng.uniform(2.0, 8.0))
    kappa = float(rng.uniform(0.3, 1.0)) * scale**2
    v = rng.normal(0.0, 0.5 * scale, size=2)
    return [
        PlumeRelease(
            amplitude=float(rng.uniform(0.5, 1.5)),
            centre=(float(rng.uniform(0, side)), float(rng.uniform(0, side))),
            width=float(rng.uniform(2.0, 3.0)) * scale,
            velocity=(float(v[0]), float(v[1])),
            diffusivity=kappa,
            time=time,
        )
        for _ in range(count)
    ]


def gaussian_release(side: int, release: PlumeRelease, time: float | None = None) -> np.ndarray:
    """Exact periodic solution of one release at `time` (default: the release's own time)."""
    t = release.time if time is None else time
    s2 = release.width**2 + 2 * release.diffusivity * t
    grid = np.arange(side, dtype=np.float64) + 0.5  # cell centres
    out = np.ones((side, side))
    for axis in range(2):
        c = (release.centre[axis] + release.velocity[axis] * t) % side
        d = grid - c
        # periodic images: three copies each way is exact to far below float32 for s <= side/4
        profile = cast(
            np.ndarray, sum(np.exp(-((d + k * side) ** 2) / (2 * s2)) for k in range(-3, 4))
        )
        out = out * (profile[:, None] if axis == 0 else profile[None, :])
    return release.amplitude * release.width**2 / s2 * out


def plume(seed: int, side: int = 32) -> np.ndarray:
    """One plume field, float32, shape (side, side)."""
    rng = np.random.default_rng(seed)
    total = cast(np.ndarray, sum(gaussian_release(side, r) for r in plume_releases(rng, side)))
    return total.astype(np.float32)


def generate(family: str, seeds: np.ndarray | list[int], side: int = 32) -> np.ndarray:
    """Fields for each seed, shape (len(seeds), side, side), float32."""
    if family != PLUME:
        raise ValueError(f"unknown field family {family!r}; known: {FAMILIES}")
    return (
        np.stack([plume(int(s), side) for s in seeds])
        if len(seeds)
        else np.zeros((0, side, side), np.float32)
    )


def random_mask(rng: np.random.Generator, side: int, fraction: float) -> np.ndarray:
    """A boolean mask with round(fraction·side²) sites observed, chosen uniformly without repeats."""
    n = side * side
    k = int(round(fraction * n))
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=k, replace=False)] = True
    return mask.reshape(side, side)
