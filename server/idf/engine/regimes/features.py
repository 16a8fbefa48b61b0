"""Flow regimes, defined by dynamics (docs/regimes.md), and the physical features of a window.

Ground truth (`label_trajectory`, needs the solver): after a spin-up, over an observation span,
- steady: the relative time derivative |∂ω/∂t| / |ω| (rms norms) stays below STEADY_RATE;
- chaotic: the largest Lyapunov exponent — twin trajectory from a 1e-8 perturbation, renormalised
  every LYAPUNOV_INTERVAL time units — exceeds CHAOS_EXPONENT;
- periodic (including quasi-periodic): neither — the motion persists but nearby trajectories do
  not separate exponentially.
Never from the Reynolds number alone: the same Re can be steady from one initial condition and
periodic from another, and the labels come from each trajectory.

Features of a window of frames (`window_features`) use nothing but the frames and their interval:
relative time derivative, spectral concentration and flatness of the energy and enstrophy series,
recurrence of the state, relative energy fluctuation, decorrelation time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from idf.engine.errors import Cancelled
from idf.engine.flows.navier_stokes import FlowSpec, Solver, random_vorticity

REGIMES = ("steady", "periodic", "chaotic")
STEADY_RATE = 1e-3  # per unit time
CHAOS_EXPONENT = 0.01  # per unit time
LYAPUNOV_INTERVAL = 5.0
SPIN_UP = 300.0
OBSERVE = 300.0
FEATURE_SIDE = 32
MIN_DURATION = 40.0  # time units a window must span
MIN_FRAMES = 32
MAX_INTERVAL = 2.0  # largest frame interval the features resolve (periods ~ 5-20 time units)


@dataclass(frozen=True)
class Labelled:
    regime: str
    relative_rate: float
    lyapunov: float
    frames: np.ndarray  # (T, n, n) float32 vorticity over the observation span
    frame_interval: float


def label_trajectory(
    spec: FlowSpec,
    seed: int,
    *,
    frame_interval: float = 0.5,
    spin_up: float = SPIN_UP,
    observe: float = OBSERVE,
    device: str = "cpu",
) -> Labelled:
    solver = Solver(spec, device=device)
    dt = solver.dt
    every = max(1, round(frame_interval / dt))
    interval = every * dt
    w = solver.evolve(random_vorticity(spec.resolution, seed), spin_up)
    scale = float(w.pow(2).mean().sqrt())
    eps = 1e-8 * scale
    rng = np.random.default_rng([seed, 7])
    # zero mean: the box has no net circulation. A mean offset would sit in the k = 0 mode, which
    # only drag damps (rate −α): below the first instability it would be reported instead of the
    # slowest physical mode (tests/test_regimes.py checks the exponent against linear theory)
    kick = rng.normal(size=w.shape)
    twin = w + eps * torch.as_tensor(kick - kick.mean(), dtype=w.dtype)
    per = max(1, round(LYAPUNOV_INTERVAL / interval))
    frames, logs = [], []
    chunks = max(1, int(observe / (per * interval)))
    for _ in range(chunks):
        both = solver.advance(torch.stack([w, twin]), per * every, frame_every=every)
        frames.append(both[:, 0])
        w, twin = both[-1, 0], both[-1, 1]
        d = float((twin - w).pow(2).mean().sqrt())
        logs.append(math.log(max(d, 1e-300) / eps))
        twin = w + (twin - w) * (eps / max(d, 1e-300))
    series = torch.cat(frames).float().numpy()
    lyapunov = float(np.mean(logs[len(logs) // 3 :])) / (
        per * interval
    )  # skip the alignment transient
    rate = relative_rate(series, interval)
    regime = (
        "steady" if rate < STEADY_RATE else ("chaotic" if lyapunov > CHAOS_EXPONENT else "periodic")
    )
    return Labelled(regime, rate, lyapunov, series, interval)


def relative_rate(frames: np.ndarray, interval: float) -> float:
    f = frames.astype(np.float64)
    return float(
        np.sqrt(np.mean(np.diff(f, axis=0) ** 2)) / (interval * max(np.sqrt(np.mean(f**2)), 1e-300))
    )


def resample(frames: np.ndarray, side: int = FEATURE_SIDE) -> np.ndarray:
    """Spectral resampling of (T, n, m) periodic frames to (T, side, side)."""
    f = np.fft.fft2(frames.astype(np.float64))
    n, m = frames.shape[-2:]
    out = np.zeros((frames.shape[0], side, side), dtype=complex)
    hy, hx = min(n, side) // 2, min(m, side) // 2
    for sy in (slice(0, hy), slice(-hy, None)):
        for sx in (slice(0, hx), slice(-hx, None)):
            out[:, sy, sx] = f[:, sy, sx]
    return np.fft.ifft2(out).real * (side * side) / (n * m)


FEATURES = (
    "log_relative_rate",
    "energy_peak_fraction",
    "enstrophy_peak_fraction",
    "energy_flatness",
    "recurrence",
    "energy_fluctuation",
    "log_decorrelation_time",
)


def _spectrum(series: np.ndarray) -> np.ndarray:
    x = series - series.mean()
    return np.abs(np.fft.rfft(x * np.hanning(len(x)))[1:]) ** 2


def _peak_fraction(power: np.ndarray) -> float:
    """Share of the power within ±1 bin of the three strongest peaks (1 for a discrete spectrum)."""
    total = power.sum()
    if total <= 0:
        return 1.0
    taken = np.zeros(len(power), dtype=bool)
    for i in np.argsort(power)[::-1][:3]:
        taken[max(i - 1, 0) : i + 2] = True
    return float(power[taken].sum() / total)


def window_features(
    frames: np.ndarray, interval: float, should_stop: Callable[[], bool] = lambda: False
) -> dict[str, float]:
    """The named features of a window of vorticity frames (T, n, m) spaced by `interval`.
    The recurrence search is O(T²) in the caller's frame count: it checks `should_stop` per lag."""
    read = (
        len(frames) * FEATURE_SIDE * FEATURE_SIDE
    )  # the work Cancelled reports: the window was read
    w = resample(frames)
    if should_stop():
        raise Cancelled(read)
    k = np.fft.fftfreq(FEATURE_SIDE, d=1.0 / FEATURE_SIDE)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    w_hat = np.fft.fft2(w) / (FEATURE_SIDE**2)
    energy = 0.5 * np.sum(
        np.abs(w_hat) ** 2 * np.where(k2 > 0, 1 / np.maximum(k2, 1), 0), axis=(1, 2)
    )
    enstrophy = 0.5 * np.mean(w**2, axis=(1, 2))
    rate = relative_rate(w, interval)
    pe, pz = _spectrum(energy), _spectrum(enstrophy)
    flat = float(np.exp(np.mean(np.log(pe + 1e-300))) / max(pe.mean(), 1e-300)) if pe.size else 1.0
    norm = np.sqrt(np.mean(w**2)) + 1e-300
    t = len(w)
    lag0 = max(2, t // 8)
    first = w[: t // 2]
    dist = []
    for lag in range(lag0, t // 2):
        if should_stop():
            raise Cancelled(read)
        dist.append(
            np.sqrt(
                np.mean((w[lag : lag + len(first)] - first[: t - lag]) ** 2, axis=(1, 2))
            ).mean()
        )
    recurrence = float(min(dist) / norm) if dist else 0.0
    if should_stop():
        raise Cancelled(read)
    z = enstrophy - enstrophy.mean()
    ac = np.correlate(z, z, "full")[t - 1 :] / max(np.dot(z, z), 1e-300)
    crossing = np.argmax(ac < 0.5) if np.any(ac < 0.5) else t
    return {
        "log_relative_rate": math.log10(rate + 1e-12),
        "energy_peak_fraction": _peak_fraction(pe),
        "enstrophy_peak_fraction": _peak_fraction(pz),
        "energy_flatness": flat,
        "recurrence": recurrence,
        "energy_fluctuation": float(energy.std() / max(energy.mean(), 1e-300)),
        "log_decorrelation_time": math.log10(max(crossing, 1) * interval),
    }


def frames_needed(count: int, interval: float) -> int:
    """Frames still missing before a window of `count` frames at `interval` can be decided."""
    need = max(MIN_FRAMES, math.ceil(MIN_DURATION / interval) + 1)
    return max(0, need - count)
