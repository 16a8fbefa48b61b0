"""Exact laws the sampler tests compare with, computed here in numpy, independently of the kernels.

Single-site phi^4 (kappa = 0: the Boltzmann law factorises into independent sites), with
V(x) = a x^2 / 2 + b x^4 / 4 - h x and temperature T:
- `Site.moments`: <x^m> under exp(-V / T) by quadrature on a fine grid;
- `Site.sample`: exact draws from that law (inverse CDF of the quadrature);
- `Site.ula_law`: the law of the unadjusted Langevin chain x <- x - eta V'(x) + sqrt(2 eta T) xi
  after k steps from x = 0, by iterating its Gaussian transition kernel on the grid (the chain is
  biased by the step: this is its own law, not exp(-V / T));
- `Site.mala_acceptance`: the expected MALA acceptance rate at stationarity,
  E min(1, exp(-(V(y) - V(x)) / T) q(x|y) / q(y|x)), a 2-D integral over x ~ exp(-V / T) and the
  proposal's normal xi.

1-D periodic ring of n sites with coupling kappa, E = sum_i kappa/2 (x_{i+1} - x_i)^2 + V(x_i):
`Ring` uses the transfer operator K(x, y) = exp(-(kappa/2 (y - x)^2 + V(x)/2 + V(y)/2) / T)
discretised on a grid, so Z = Tr K^n, and draws exact states site by site.

All grids use the trapezoid rule on integrands that are smooth and decay like Gaussians at the
ends: its error falls faster than any power of the spacing, and each helper checks that the
grid's ends carry no mass.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

trapezoid = (
    np.trapezoid if hasattr(np, "trapezoid") else np.trapz
)  # numpy < 2 (pyproject allows 1.26)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the setting. The fast sampler tests step many
    small tensors (<= 16k elements) where an OpenMP fan-out costs more than the work, and on a
    loaded shared machine a spinning thread pool makes it far worse (measured on 2 busy cores:
    torch.roll of 16k int8, 0.2-0.4 ms with 2 threads, 0.012 ms with 1). Results do not depend on
    it beyond the rounding of reductions."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Site:
    a: float
    b: float
    h: float
    temperature: float

    def potential(self, x: np.ndarray) -> np.ndarray:
        return self.a * x**2 / 2 + self.b * x**4 / 4 - self.h * x

    def force(self, x: np.ndarray) -> np.ndarray:
        """-V'(x)."""
        return -(self.a * x + self.b * x**3 - self.h)

    def grid(self, points: int = 20001) -> tuple[np.ndarray, np.ndarray]:
        """(x, normalised density of exp(-V / T) at x) on a range holding all but ~e^-60 of the mass."""
        wide = np.linspace(-60, 60, 240001)
        v = self.potential(wide)
        inside = wide[(v - v.min()) / self.temperature < 60]
        lo, hi = inside.min() - 0.5, inside.max() + 0.5
        x = np.linspace(lo, hi, points)
        w = np.exp(-(self.potential(x) - v.min()) / self.temperature)
        density = w / trapezoid(w, x)
        assert density[0] < 1e-20 and density[-1] < 1e-20
        return x, density

    def moments(self, powers: tuple[int, ...]) -> np.ndarray:
        x, p = self.grid()
        return np.array([trapezoid(p * x**m, x) for m in powers])

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        x, p = self.grid()
        cdf = np.concatenate(([0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(x))))
        return np.interp(rng.random(count), cdf / cdf[-1], x)

    def ula_law(
        self, step_size: float, steps: int, points: int = 1201
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x, density) of the unadjusted Langevin chain after `steps` steps from x = 0."""
        s2 = 2 * step_size * self.temperature
        x0, _ = self.grid(2001)
        lo, hi = (
            x0[0] - 1.0,
            x0[-1] + 1.0,
        )  # the chain is wider than exp(-V/T): its step adds spread
        x = np.linspace(lo, hi, points)
        dx = x[1] - x[0]
        assert dx < 0.2 * math.sqrt(s2), "the grid must resolve the step's noise"
        mean = x + step_size * self.force(x)
        # kernel[j, i] = trapezoid weight of x_i times the normal density of x_j around mean(x_i)
        kernel = np.exp(-((x[:, None] - mean[None, :]) ** 2) / (2 * s2)) / math.sqrt(
            2 * math.pi * s2
        )
        kernel *= dx
        kernel[:, 0] *= 0.5
        kernel[:, -1] *= 0.5
        p = np.exp(-((x - step_size * self.h) ** 2) / (2 * s2)) / math.sqrt(
            2 * math.pi * s2
        )  # one step from 0
        for _ in range(steps - 1):
            p = kernel @ p
        mass = trapezoid(p, x)
        assert abs(mass - 1) < 1e-9 and p[0] < 1e-12 and p[-1] < 1e-12, mass
        return x, p

    def mala_acceptance(
        self, step_size: float, points: int = 801, noise_points: int = 1001
    ) -> float:
        """The 2-D integral on an 801 x 1001 grid: the kink of min(1, .) makes its error O(spacing^2);
        measured against a 3001 x 4001 grid it is ~1e-7, far below the samplers' standard errors (~1e-3)."""
        t, eta = self.temperature, step_size
        x, p = self.grid(points)
        xi = np.linspace(-9, 9, noise_points)
        x2, xi2 = x[:, None], xi[None, :]
        y = x2 + eta * self.force(x2) + math.sqrt(2 * eta * t) * xi2
        reverse = x2 - y - eta * self.force(y)  # x - y + eta V'(y)
        log_alpha = (
            -(self.potential(y) - self.potential(x2)) / t - reverse**2 / (4 * eta * t) + xi2**2 / 2
        )
        accept = np.exp(np.minimum(log_alpha, 0.0))
        inner = trapezoid(accept * np.exp(-(xi2**2) / 2) / math.sqrt(2 * math.pi), xi, axis=1)
        return float(trapezoid(p * inner, x))


def law_moments(x: np.ndarray, p: np.ndarray, powers: tuple[int, ...]) -> np.ndarray:
    return np.array([trapezoid(p * x**m, x) for m in powers])


@dataclass(frozen=True)
class Ring:
    """A periodic 1-D chain of `sites` phi^4 sites with coupling kappa."""

    site: Site
    kappa: float
    sites: int
    points: int = 401

    def _operator(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, _ = self.site.grid(2001)
        x = np.linspace(x[0], x[-1], self.points)
        w = np.full(self.points, x[1] - x[0])
        w[0] = w[-1] = w[0] / 2
        v = self.site.potential(x)
        v = v - v.min()
        t = self.site.temperature
        k = np.exp(
            -(self.kappa / 2 * (x[:, None] - x[None, :]) ** 2 + (v[:, None] + v[None, :]) / 2) / t
        )
        k *= np.sqrt(w[:, None] * w[None, :])
        return x, w, k

    def _powers(self) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(x, K, [K^0, ..., K^n]), each power rescaled to a largest entry of 1 (only ratios of
        traces and row-normalised weights are used, so the scales cancel)."""
        x, _, k = self._operator()
        powers = [np.eye(self.points)]
        for _ in range(self.sites):
            nxt = powers[-1] @ k
            powers.append(nxt / nxt.max())
        return x, k, powers

    def moments(self) -> dict[str, float]:
        """<x_i>, <x_i^2>, <x_i^4> from Tr(F K^n) / Tr(K^n) and <x_i x_{i+1}> from
        Tr(X K X K^(n-1)) / Tr(K^n)."""
        x, k, powers = self._powers()
        closing = powers[self.sites - 1]
        ring = k @ closing
        z = np.trace(ring)
        out = {f"x{m}": float(np.sum(np.diag(ring) * x**m) / z) for m in (1, 2, 4)}
        out["x0x1"] = float(np.trace((x[:, None] * k * x[None, :]) @ closing) / z)
        return out

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Exact draws of the ring (count, sites): x_0 from its marginal, then each next site given
        the previous one and the ring's closure, x_j ~ K(x_{j-1}, x_j) K^(n-j)(x_j, x_0); each draw
        is spread uniformly over its grid cell."""
        x, k, powers = self._powers()
        idx = np.empty((count, self.sites), dtype=np.int64)

        def draw(weights: np.ndarray) -> np.ndarray:  # one categorical draw per row
            cdf = np.cumsum(weights, axis=1)
            u = rng.random(len(weights))[:, None] * cdf[:, -1:]
            return np.minimum((cdf < u).sum(axis=1), self.points - 1)

        idx[:, 0] = draw(np.broadcast_to(np.diag(powers[self.sites]), (count, self.points)))
        first = idx[:, 0]
        for j in range(1, self.sites):
            idx[:, j] = draw(k[idx[:, j - 1], :] * powers[self.sites - j][:, first].T)
        dx = x[1] - x[0]
        return x[idx] + (rng.random(idx.shape) - 0.5) * dx
