"""Samplers behind one interface, and their registry.

Every chain sampler is a class with `x` (the chains' current states) and `step(k)`, which
advances every chain one step (one sweep for Gibbs) and returns a `StepInfo`; the energy model's
`Energy` does the arithmetic (fused kernels for φ⁴ and Ising). `SAMPLERS` registers each one with
what the run needs to know about it; reverse diffusion is registered too, as a sampler that runs a
whole request itself (`run`, `estimate`). Adding a sampler is one class and one entry.

Temperature ladders (docs/diffusion.md):
- annealed Langevin: K levels T_k = T_max (T / T_max)^(k / (K - 1)), k = 0..K-1, the steps split
  evenly over the levels; at level k the step size is eta_k = eta T_k / T_max (eta is the step at
  T_max) and the noise variance 2 eta_k T_k, so the chain is Langevin for exp(-E / T_k).
- replica exchange: R temperatures ascending from T (given, or geometric from T to T_max); each
  step is one MALA step per replica, then swaps of neighbouring replicas (even pairs on even
  steps, odd pairs on odd steps) accepted with min(1, exp((1/T_i - 1/T_j)(E_i - E_j))).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from idf.engine.cost import Cost
from idf.engine.errors import Cancelled
from idf.engine.sampling import reverse_diffusion
from idf.engine.sampling.energy import Energy
from idf.engine.sampling.spec import Progress, SampleOutput, SampleSpec, total_target
from idf.kernels.random import cpu_generator


@dataclass
class StepInfo:
    temperature: float
    energy: torch.Tensor  # (B,) float64, energy of each chain's current (returned) state
    accepted: torch.Tensor | None  # (B,) bool when the sampler accepts or rejects


class Sampler(Protocol):
    @property
    def x(self) -> torch.Tensor:
        """The chains' current state."""

    def step(self, k: int) -> StepInfo: ...


class Langevin:
    """Unadjusted Langevin at one temperature, optionally projected onto a fixed total."""

    def __init__(
        self,
        x: torch.Tensor,
        model: Energy,
        temperature: float,
        step_size: float,
        seed: int,
        ndim: int,
        total: float | None = None,
    ) -> None:
        self.x, self.model, self.t, self.eta, self.seed, self.ndim, self.total = (
            x,
            model,
            temperature,
            step_size,
            seed,
            ndim,
            total,
        )
        self.x = self._project(x)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self.total is None:
            return x
        axes = tuple(range(x.ndim - self.ndim, x.ndim))
        n = math.prod(x.shape[-self.ndim :])
        shift = (x.sum(axes, dtype=torch.float64, keepdim=True) - self.total) / n
        return x - shift.to(x.dtype)

    def _level(self, k: int) -> tuple[float, float]:
        return self.t, self.eta

    def step(self, k: int) -> StepInfo:
        t, eta = self._level(k)
        self.x, _ = self.model.langevin_step(
            self.x, step_size=eta, temperature=t, seed=self.seed, step=k, ndim=self.ndim
        )
        self.x = self._project(self.x)
        return StepInfo(t, self.model.energy(self.x, self.ndim), None)


class AnnealedLangevin(Langevin):
    def __init__(
        self,
        x: torch.Tensor,
        model: Energy,
        temperature: float,
        max_temperature: float,
        step_size: float,
        steps: int,
        seed: int,
        ndim: int,
        levels: int = 10,
        total: float | None = None,
    ) -> None:
        super().__init__(x, model, temperature, step_size, seed, ndim, total)
        self.levels = max(1, min(levels, steps))
        self.steps = steps
        self.t_max = max_temperature

    def _level(self, k: int) -> tuple[float, float]:
        level = min(self.levels - 1, k * self.levels // self.steps)
        frac = level / (self.levels - 1) if self.levels > 1 else 1.0
        t_k = self.t_max * (self.t / self.t_max) ** frac
        return t_k, self.eta * t_k / self.t_max


class Mala:
    def __init__(
        self,
        x: torch.Tensor,
        model: Energy,
        temperature: float,
        step_size: float,
        seed: int,
        ndim: int,
    ) -> None:
        self.x, self.model, self.t, self.eta, self.seed, self.ndim = (
            x,
            model,
            temperature,
            step_size,
            seed,
            ndim,
        )

    def step(self, k: int) -> StepInfo:
        r = self.model.mala_step(
            self.x, step_size=self.eta, temperature=self.t, seed=self.seed, step=k, ndim=self.ndim
        )
        self.x = r.phi
        return StepInfo(self.t, r.energy, r.accepted)


class ReplicaExchange:
    """x holds the chains at the target temperature; replicas at the higher rungs live here."""

    def __init__(
        self,
        x: torch.Tensor,
        model: Energy,
        temperatures: list[float],
        step_size: float,
        seed: int,
        ndim: int,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.temperatures, self.model, self.eta, self.seed, self.ndim = (
            temperatures,
            model,
            step_size,
            seed,
            ndim,
        )
        self.should_stop = should_stop  # checked between rungs: a step of a long ladder is long
        self.replicas = [x.clone() for _ in temperatures]
        energy = model.energy(x, ndim)  # every replica starts from x: one evaluation serves all
        self.energies = [energy.clone() for _ in temperatures]
        self.swaps_accepted = 0
        self.swaps_tried = 0

    @property
    def x(self) -> torch.Tensor:
        return self.replicas[0]

    def step(self, k: int) -> StepInfo:
        accepted = None
        for i, t in enumerate(self.temperatures):
            if i and self.should_stop():
                raise Cancelled(self.replicas[0].numel() * (k * len(self.temperatures) + i))
            r = self.model.mala_step(
                self.replicas[i],
                step_size=self.eta * t / self.temperatures[0],
                temperature=t,
                seed=self.seed,
                step=k * len(self.temperatures) + i,
                ndim=self.ndim,
            )
            self.replicas[i], self.energies[i] = r.phi, r.energy
            if i == 0:
                accepted = r.accepted
        gen = cpu_generator(self.seed, k, 2**31)
        for i in range(k % 2, len(self.temperatures) - 1, 2):
            j = i + 1
            log_a = (1 / self.temperatures[i] - 1 / self.temperatures[j]) * (
                self.energies[i] - self.energies[j]
            )
            u = torch.rand(log_a.shape, generator=gen, dtype=torch.float64).to(log_a.device)
            swap = torch.log(u) < log_a
            self.swaps_tried += swap.numel()
            self.swaps_accepted += int(swap.sum())
            sel = swap.reshape(swap.shape + (1,) * self.ndim)
            self.replicas[i], self.replicas[j] = (
                torch.where(sel, self.replicas[j], self.replicas[i]),
                torch.where(sel, self.replicas[i], self.replicas[j]),
            )
            self.energies[i], self.energies[j] = (
                torch.where(swap, self.energies[j], self.energies[i]),
                torch.where(swap, self.energies[i], self.energies[j]),
            )
        return StepInfo(self.temperatures[0], self.energies[0], accepted)


class Gibbs:
    def __init__(
        self, x: torch.Tensor, model: Energy, temperature: float, seed: int, rule: str = "heat-bath"
    ) -> None:
        self.x, self.model, self.t, self.seed, self.rule = x, model, temperature, seed, rule

    def step(self, k: int) -> StepInfo:
        self.x, energy = self.model.sweep(
            self.x, temperature=self.t, rule=self.rule, seed=self.seed, step=k
        )
        return StepInfo(self.t, energy, None)


def replica_ladder(spec: SampleSpec, rungs: int = 8) -> list[float]:
    """The replica-exchange temperatures: as given, else `rungs` geometric from T to T_max."""
    if spec.temperatures:
        return list(spec.temperatures)
    ratio = spec.max_temperature / spec.temperature
    return [spec.temperature * ratio ** (i / (rungs - 1)) for i in range(rungs)]


# make(x, energy, spec, step size, ndim, should_stop) -> the sampler, its chains started at x
Factory = Callable[[torch.Tensor, Energy, SampleSpec, float, int, Callable[[], bool]], Sampler]
Runner = Callable[..., SampleOutput]  # run(spec, *, progress, should_stop, device)


@dataclass(frozen=True)
class SamplerInfo:
    """A sampler as a sampling run sees it. Chain samplers have `make`; a sampler that runs a
    whole request itself (reverse diffusion) has `run` and `estimate` instead."""

    name: str
    make: Factory | None = None
    gradient: bool = False  # steps along ∇E: the step size is bounded by the model's curvature
    default_step: float = 0.0
    accepts: bool = False  # accepts or rejects steps: reports acceptance; only overflow diverges it
    constraints: tuple[str, ...] = ()  # exact constraints it enforces (by projection)
    ladder: bool = (
        False  # needs a temperature ladder (max_temperature > temperature, or temperatures)
    )
    replicas: Callable[[SampleSpec], int] = lambda spec: (
        1
    )  # states per chain (the sweep's work multiplier)
    keeps_replicas: bool = False  # holds one more state per replica (memory)
    run: Runner | None = None
    estimate: Callable[[SampleSpec], Cost] | None = None


SAMPLERS: dict[str, SamplerInfo] = {
    s.name: s
    for s in (
        SamplerInfo(
            "langevin",
            lambda x, e, spec, eta, nd, stop: Langevin(
                x, e, spec.temperature, eta, spec.seed, nd, total_target(spec)
            ),
            gradient=True,
            default_step=0.05,
            constraints=("total",),
        ),
        SamplerInfo(
            "mala",
            lambda x, e, spec, eta, nd, stop: Mala(x, e, spec.temperature, eta, spec.seed, nd),
            gradient=True,
            default_step=0.01,
            accepts=True,
        ),
        SamplerInfo(
            "annealed-langevin",
            lambda x, e, spec, eta, nd, stop: AnnealedLangevin(
                x,
                e,
                spec.temperature,
                spec.max_temperature or spec.temperature,
                eta,
                spec.steps,
                spec.seed,
                nd,
                total=total_target(spec),
            ),
            gradient=True,
            default_step=0.05,
            constraints=("total",),
            ladder=True,
        ),
        SamplerInfo(
            "replica-exchange",
            lambda x, e, spec, eta, nd, stop: ReplicaExchange(
                x, e, replica_ladder(spec), eta, spec.seed, nd, should_stop=stop
            ),
            gradient=True,
            default_step=0.01,
            accepts=True,
            ladder=True,
            replicas=lambda spec: len(replica_ladder(spec)),
            keeps_replicas=True,
        ),
        SamplerInfo(
            "gibbs", lambda x, e, spec, eta, nd, stop: Gibbs(x, e, spec.temperature, spec.seed)
        ),
        SamplerInfo(
            "reverse-diffusion", run=reverse_diffusion.generate, estimate=reverse_diffusion.estimate
        ),
    )
}

__all__ = [
    "SAMPLERS",
    "AnnealedLangevin",
    "Gibbs",
    "Langevin",
    "Mala",
    "Progress",
    "ReplicaExchange",
    "SamplerInfo",
    "StepInfo",
    "replica_ladder",
]
