"""The 2-D Ising model, E = −J Σ_<ij> s_i s_j − Σ_i h_i s_i with s = ±1 on a periodic lattice with
even sides, swept by the checkerboard Gibbs kernels of idf.kernels.ising."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from idf.engine.sampling.energy import BOUND, Energy, EnergyModel, Parameter
from idf.kernels.ising import Ising, ising_energy, ising_sweep


@dataclass(frozen=True)
class IsingEnergy(Ising, Energy):
    def energy(self, x: torch.Tensor, ndim: int) -> torch.Tensor:
        return ising_energy(x, self)[0]

    def sweep(
        self, x: torch.Tensor, *, temperature: float, rule: str, seed: int, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        swept = ising_sweep(x, self, temperature=temperature, rule=rule, seed=seed, step=step)
        return swept.spins, swept.energy


def _shape(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 2 or shape[0] % 2 or shape[1] % 2:
        return "Ising lattices are 2-D with even sides (checkerboard updates)"
    return None


def _random_spins(count: int, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (count, *shape), generator=gen) * 2 - 1


def _spins(x: torch.Tensor) -> str | None:
    return None if bool(torch.all((x == 1) | (x == -1))) else "Ising states are +1/-1"


ISING = EnergyModel(
    "ising",
    "E = -J sum_<ij> s_i s_j - sum_i h_i s_i, s = +-1, 2-D periodic lattice with even sides.",
    (
        Parameter("J", "coupling", 1.0, -BOUND, BOUND),
        Parameter("h", "uniform external field", 0.0, -BOUND, BOUND),
    ),
    ("gibbs",),
    make=lambda p, h: IsingEnergy(J=p["J"], h=h),
    curvature=lambda p, ndim: 0.0,
    # int8 spins computed in float32 (local fields, uniforms) and float64 (energies): 68 bytes a
    # site as measured by `python -m idf.engine.cost` (itemsize 1)
    step_buffers={"gibbs": 68},
    default_sampler="gibbs",
    spin=True,
    ndims=(2,),
    check_shape=_shape,
    initial=_random_spins,
    check_initial=_spins,
)
