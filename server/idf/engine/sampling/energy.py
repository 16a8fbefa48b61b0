"""The energy-model protocol: what a lattice energy model gives the samplers.

An `EnergyModel` is a family (its name, parameters with defaults and ranges, the samplers and
constraints it supports, its state kind, its curvature bound and the memory of its steps); its
`make` binds parameters and an external field into an `Energy`, the object the samplers call.

An `Energy` evaluates E(x) and ∇E(x) per chain on periodic grids of `ndim` trailing axes, and
takes sampler steps. The generic steps below are plain torch from the energy and its gradient,
with the kernels' noise conventions (standard normals from `cpu_generator(seed, step)`), so a new
continuous model needs only `evaluate`; a model with fused kernels (φ⁴) overrides the steps:

    Langevin  x' = x − η∇E(x) + √(2ηT) ξ
    MALA      the same proposal y, accepted with min(1, π(y)q(x|y) / π(x)q(y|x)), π ∝ exp(−E/T),
              log α = −(E(y) − E(x))/T − |x − y + η∇E(y)|²/(4ηT) + |ξ|²/2

A spin model (states ±1) provides `sweep` (one Gibbs sweep) instead of the gradient steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from idf.kernels.mala import MalaResult, mala_decide
from idf.kernels.random import cpu_generator

# Every parameter is bounded (lattice units): beyond ~1e6 energies of ordinary states leave the
# range where float32 chains stay finite, and no physical setting needs more.
BOUND = 1e6


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    default: float
    minimum: float = -math.inf
    maximum: float = math.inf


class Energy:
    """A bound energy: parameters and external field fixed. Subclasses implement `evaluate`
    (continuous states) or `energy` and `sweep` (spin states)."""

    def evaluate(self, x: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(E per chain as float64 (B,), ∇E with x's shape and dtype)."""
        raise NotImplementedError

    def energy(self, x: torch.Tensor, ndim: int) -> torch.Tensor:
        return self.evaluate(x, ndim)[0]

    def gradient(self, x: torch.Tensor, ndim: int) -> torch.Tensor:
        return self.evaluate(x, ndim)[1]

    def hessian_bounds(self, amplitude: float, ndim: int) -> tuple[float, float]:
        """(lo, hi) with lo·I ⪯ ∇²E(y) ⪯ hi·I for every y with |y_i| <= amplitude: the step and the
        momentum of the accelerated gradient descent in reverse diffusion's energy guidance."""
        raise NotImplementedError

    def langevin_step(
        self,
        x: torch.Tensor,
        *,
        step_size: float,
        temperature: float,
        seed: int,
        step: int,
        ndim: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One unadjusted Langevin step of every chain: (new x, E(old x) per chain)."""
        sigma = math.sqrt(2.0 * step_size * temperature)
        noise = torch.randn(x.shape, generator=cpu_generator(seed, step), dtype=x.dtype).to(
            x.device
        )
        energy, grad = self.evaluate(x, ndim)
        return x - step_size * grad + sigma * noise, energy

    def mala_step(
        self,
        x: torch.Tensor,
        *,
        step_size: float,
        temperature: float,
        seed: int,
        step: int,
        ndim: int,
    ) -> MalaResult:
        """One MALA step of every chain (the kernels' random streams: noise, then uniforms)."""
        sigma = math.sqrt(2.0 * step_size * temperature)
        axes = tuple(range(x.ndim - ndim, x.ndim))
        gen = cpu_generator(seed, step)
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        uniform = torch.rand(x.shape[: x.ndim - ndim], generator=gen, dtype=torch.float64).to(
            x.device
        )
        e_x, g_x = self.evaluate(x, ndim)
        proposal = x - step_size * g_x + sigma * noise
        e_y, g_y = self.evaluate(proposal, ndim)
        r = x - proposal + step_size * g_y
        xi2 = (noise * noise).sum(axes, dtype=torch.float64)
        r2 = (r * r).sum(axes, dtype=torch.float64)
        return mala_decide(x, proposal, e_x, e_y, xi2, r2, uniform, temperature, sigma, ndim)

    def sweep(
        self, x: torch.Tensor, *, temperature: float, rule: str, seed: int, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Gibbs sweep of every chain (spin models): (new x, E(new x) per chain)."""
        raise NotImplementedError(f"{type(self).__name__} has no Gibbs sweep")


def _zeros(count: int, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.zeros((count, *shape))


def _no_check(x: torch.Tensor) -> str | None:
    return None


def _any_grid(shape: tuple[int, ...]) -> str | None:
    return None


@dataclass(frozen=True)
class EnergyModel:
    """A family of energies, as `ListEnergyModels` lists it and `Sample` accepts it.

    `make(parameters, h)` binds it: `h` is the uniform field parameter "h" plus the caller's
    external field map when one is given (a float or a grid tensor), for models that take one.
    `curvature(parameters, ndim)` bounds ∇²E near the minima (0 for spin models): gradient steps
    of size η are stable when η·curvature < 2. `step_buffers[sampler]`: peak bytes per chain-site
    of one step on the CPU path, in multiples of the state's itemsize, as `python -m
    idf.engine.cost` measured them (replica exchange adds one state per replica)."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    samplers: tuple[str, ...]
    make: Callable[[Mapping[str, float], float | torch.Tensor], Energy]
    curvature: Callable[[Mapping[str, float], int], float]
    step_buffers: Mapping[str, int]
    accepts_external_field: bool = True
    constraints: tuple[str, ...] = ()
    default_sampler: str = "mala"
    spin: bool = False  # values are ±1 spins (int8): sampled by sweeps, not gradient steps
    ndims: tuple[int, ...] = (1, 2, 3)  # the grid dimensions it takes, ascending
    check_shape: Callable[[tuple[int, ...]], str | None] = (
        _any_grid  # a reason to refuse a grid, or None
    )
    initial: Callable[[int, tuple[int, ...], torch.Generator], torch.Tensor] = (
        _zeros  # default start
    )
    check_initial: Callable[[torch.Tensor], str | None] = (
        _no_check  # a reason to refuse a start, or None
    )

    def state_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return torch.int8 if self.spin else dtype

    def bind(
        self,
        parameters: Mapping[str, float],
        external_field: np.ndarray | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> Energy:
        h: float | torch.Tensor = parameters.get("h", 0.0)
        if external_field is not None:
            field_dtype = torch.float32 if self.spin else dtype
            h = torch.as_tensor(np.array(external_field), dtype=field_dtype, device=device) + h
        return self.make(parameters, h)
