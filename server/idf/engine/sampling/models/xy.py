"""The XY model (planar rotors) on a periodic lattice of 1 to 3 dimensions, angles θ in radians:

    E = −J Σ_i Σ_a cos(θ[i+e_a] − θ_i) − Σ_i h_i cos θ_i
    ∂E/∂θ_i = J Σ_a [sin(θ_i − θ[i+e_a]) + sin(θ_i − θ[i−e_a])] + h_i sin θ_i

J > 0 aligns neighbours; h_i is a field along θ = 0. The Hessian is J times a graph Laplacian
with bond weights cos(θ_j − θ_i) ∈ [−1, 1] plus diag(h_i cos θ_i), so its spectrum lies in
[−(4·ndim·|J| + max|h|), 4·ndim·|J| + max|h|]; at the aligned minimum (J > 0) the top is exactly
4·ndim·J + h. The samplers step with the generic torch Langevin and MALA of `Energy` and return
angles wrapped to [−π, π): the energy is 2π-periodic in every angle and the proposal is a
Gaussian random walk, so the wrapped chain is the original chain seen on the torus — the same
distribution, and no float32 precision lost to angles that drift far from zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from idf.engine.sampling.energy import BOUND, Energy, EnergyModel, Parameter
from idf.kernels.mala import MalaResult


def wrap(theta: torch.Tensor) -> torch.Tensor:
    """θ mapped to [−π, π)."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


@dataclass(frozen=True)
class XYEnergy(Energy):
    J: float = 1.0
    h: float | torch.Tensor = 0.0  # a float or a grid-shaped field

    def evaluate(self, x: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        axes = tuple(range(x.ndim - ndim, x.ndim))
        bonds = torch.zeros(x.shape[: x.ndim - ndim], dtype=torch.float64, device=x.device)
        grad = self.h * torch.sin(x)
        for axis in axes:
            d = torch.roll(x, -1, axis) - x  # θ[i+e] − θ_i
            bonds += torch.cos(d).sum(axes, dtype=torch.float64)
            s = torch.sin(d)
            grad = grad - self.J * s + self.J * torch.roll(s, 1, axis)
        field = (self.h * torch.cos(x)).sum(axes, dtype=torch.float64)
        return -self.J * bonds - field, grad.to(x.dtype)

    def hessian_bounds(self, amplitude: float, ndim: int) -> tuple[float, float]:
        h = (
            float(self.h.abs().max())
            if isinstance(self.h, torch.Tensor) and self.h.numel()
            else abs(float(self.h))
        )
        top = 4 * ndim * abs(self.J) + h
        return -top, top

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
        new, energy = super().langevin_step(
            x, step_size=step_size, temperature=temperature, seed=seed, step=step, ndim=ndim
        )
        return wrap(new), energy

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
        r = super().mala_step(
            x, step_size=step_size, temperature=temperature, seed=seed, step=step, ndim=ndim
        )
        return MalaResult(wrap(r.phi), r.energy, r.accepted, r.log_alpha)


XY = EnergyModel(
    "xy",
    "Planar rotors: E = -J sum_i sum_a cos(theta[i+e_a] - theta_i) - sum_i h_i cos(theta_i), angles in radians "
    "(periodic lattice); samples are wrapped to [-pi, pi).",
    (
        Parameter("J", "coupling (> 0 aligns neighbours)", 1.0, -BOUND, BOUND),
        Parameter(
            "h",
            "uniform field along theta = 0 (added to the field map when one is given)",
            0.0,
            -BOUND,
            BOUND,
        ),
    ),
    ("mala", "langevin", "annealed-langevin", "replica-exchange"),
    make=lambda p, h: XYEnergy(J=p["J"], h=h),
    curvature=lambda p, ndim: 4 * ndim * abs(p["J"]) + abs(p["h"]),
    # measured by `python -m idf.engine.cost` (xy-mala, xy-langevin) and the same measurement for
    # replica exchange and 3-D float64 runs, 2026-12-02: 11.2 (2-D) and 12.4 (3-D) itemsizes a
    # chain-site for MALA, 9.3 and 9.6 for Langevin, 10.2 + R for R replicas; +5% for a cold process
    step_buffers={"langevin": 11, "annealed-langevin": 11, "mala": 13, "replica-exchange": 12},
)
