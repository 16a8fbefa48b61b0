"""The Gaussian free field and the φ⁴ (Ginzburg–Landau) model on periodic lattices in lattice
units, evaluated and stepped by the fused kernels of idf.kernels.phi4, .langevin and .mala:

    E = Σ_i κ/2 Σ_a (φ[i+e_a] − φ_i)² + a/2 φ_i² + b/4 φ_i⁴ − h_i φ_i

The free field is b = 0, a = m² (exactly solvable: <|φ_k|²>/N = T / (κ Σ_a 4 sin²(k_a/2) + m²)).
Curvature: the lattice Laplacian's spectrum is [0, 4·ndim·κ]; a adds a, or −2a at the double
well's minima φ² = −a/b; at |φ| <= A the quartic adds at most 3b·A².
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from idf.engine.sampling.energy import BOUND, Energy, EnergyModel, Parameter
from idf.kernels.langevin import langevin_step
from idf.kernels.mala import MalaResult, mala_step
from idf.kernels.phi4 import Phi4, phi4, phi4_gradient


@dataclass(frozen=True)
class Phi4Energy(Phi4, Energy):
    """The kernels' φ⁴ parameters with the `Energy` interface (every step is one fused kernel)."""

    def evaluate(self, x: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        ev = phi4(x, self, ndim)
        return ev.energy, ev.gradient

    def energy(self, x: torch.Tensor, ndim: int) -> torch.Tensor:
        return phi4(x, self, ndim).energy

    def gradient(self, x: torch.Tensor, ndim: int) -> torch.Tensor:
        return phi4_gradient(x, self, ndim)

    def hessian_bounds(self, amplitude: float, ndim: int) -> tuple[float, float]:
        hi = 4 * ndim * self.kappa + abs(self.a) + 3 * self.b * amplitude**2
        return min(self.a, 0.0), hi

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
        return langevin_step(
            x, self, step_size=step_size, temperature=temperature, seed=seed, step=step, ndim=ndim
        )

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
        return mala_step(
            x, self, step_size=step_size, temperature=temperature, seed=seed, step=step, ndim=ndim
        )


def curvature(kappa: float, a: float, b: float, ndim: int) -> float:
    """The largest curvature near the minima: 4·ndim·κ, plus a (or −2a at the double well's
    minima φ² = −a/b when b > 0)."""
    return 4 * ndim * kappa + (a if a >= 0 else (-2 * a if b > 0 else 0.0))


# Measured by `python -m idf.engine.cost` (11, 14.6, 13 + R bytes per itemsize, plus ~5% for a
# cold process): the state, the noise, the Laplacian and bond temporaries of the fused step.
STEP_BUFFERS = {"langevin": 12, "annealed-langevin": 12, "mala": 15, "replica-exchange": 14}
SAMPLERS = ("langevin", "mala", "annealed-langevin", "replica-exchange", "reverse-diffusion")
_KAPPA = Parameter("kappa", "gradient stiffness", 1.0, 0.0, BOUND)

GAUSSIAN_FREE_FIELD = EnergyModel(
    "gaussian-free-field",
    "E = sum_i kappa/2 sum_a (phi[i+e_a] - phi_i)^2 + mass2/2 phi_i^2 - h_i phi_i (periodic lattice); "
    "exactly solvable: <|phi_k|^2>/N = T / (kappa sum_a 4 sin^2(k_a/2) + mass2).",
    (
        _KAPPA,
        Parameter("mass2", "mass squared m^2", 1.0, 0.0, BOUND),
        Parameter(
            "h",
            "uniform external field (added to the field map when one is given)",
            0.0,
            -BOUND,
            BOUND,
        ),
    ),
    SAMPLERS,
    make=lambda p, h: Phi4Energy(kappa=p["kappa"], a=p["mass2"], b=0.0, h=h),
    curvature=lambda p, ndim: curvature(p["kappa"], p["mass2"], 0.0, ndim),
    step_buffers=STEP_BUFFERS,
    constraints=("total",),
)

PHI4 = EnergyModel(
    "phi4",
    "Ginzburg-Landau: E = sum_i kappa/2 sum_a (phi[i+e_a] - phi_i)^2 + a/2 phi_i^2 + b/4 phi_i^4 - h_i phi_i "
    "(periodic lattice); a < 0 gives a double well.",
    (
        _KAPPA,
        Parameter("a", "quadratic coefficient", -1.0, -BOUND, BOUND),
        Parameter("b", "quartic coefficient", 1.0, 0.0, BOUND),
        Parameter("h", "uniform external field", 0.0, -BOUND, BOUND),
    ),
    SAMPLERS,
    make=lambda p, h: Phi4Energy(kappa=p["kappa"], a=p["a"], b=p["b"], h=h),
    curvature=lambda p, ndim: curvature(p["kappa"], p["a"], p["b"], ndim),
    step_buffers=STEP_BUFFERS,
    constraints=("total",),
)
