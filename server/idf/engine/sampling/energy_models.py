"""The energy-model registry: what `Sample` accepts, with parameters, defaults and ranges.

Models are lattice models in lattice units on periodic grids (see idf.kernels.phi4 and
idf.kernels.ising for the energies)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from idf.engine.errors import ParameterError
from idf.kernels.ising import Ising
from idf.kernels.phi4 import Phi4


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    default: float
    minimum: float = -math.inf
    maximum: float = math.inf


@dataclass(frozen=True)
class EnergyModelInfo:
    name: str
    description: str
    parameters: tuple[Parameter, ...]
    samplers: tuple[str, ...]
    accepts_external_field: bool
    constraints: tuple[str, ...]
    spin: bool = False  # values are +-1 spins (int8)


# Every parameter is bounded (lattice units): beyond ~1e6 energies of ordinary states leave the
# range where float32 chains stay finite, and no physical setting needs more.
BOUND = 1e6

CONTINUOUS = ("langevin", "mala", "annealed-langevin", "replica-exchange", "reverse-diffusion")

REGISTRY: dict[str, EnergyModelInfo] = {
    m.name: m
    for m in (
        EnergyModelInfo(
            "gaussian-free-field",
            "E = sum_i kappa/2 sum_a (phi[i+e_a] - phi_i)^2 + mass2/2 phi_i^2 - h_i phi_i (periodic lattice); "
            "exactly solvable: <|phi_k|^2>/N = T / (kappa sum_a 4 sin^2(k_a/2) + mass2).",
            (Parameter("kappa", "gradient stiffness", 1.0, 0.0, BOUND), Parameter("mass2", "mass squared m^2", 1.0, 0.0, BOUND),
             Parameter("h", "uniform external field (added to the field map when one is given)", 0.0, -BOUND, BOUND)),
            CONTINUOUS, True, ("total",),
        ),
        EnergyModelInfo(
            "phi4",
            "Ginzburg-Landau: E = sum_i kappa/2 sum_a (phi[i+e_a] - phi_i)^2 + a/2 phi_i^2 + b/4 phi_i^4 - h_i phi_i "
            "(periodic lattice); a < 0 gives a double well.",
            (Parameter("kappa", "gradient stiffness", 1.0, 0.0, BOUND), Parameter("a", "quadratic coefficient", -1.0, -BOUND, BOUND),
             Parameter("b", "quartic coefficient", 1.0, 0.0, BOUND), Parameter("h", "uniform external field", 0.0, -BOUND, BOUND)),
            CONTINUOUS, True, ("total",),
        ),
        EnergyModelInfo(
            "ising",
            "E = -J sum_<ij> s_i s_j - sum_i h_i s_i, s = +-1, 2-D periodic lattice with even sides.",
            (Parameter("J", "coupling", 1.0, -BOUND, BOUND), Parameter("h", "uniform external field", 0.0, -BOUND, BOUND)),
            ("gibbs",), True, (), spin=True,
        ),
    )
}


def info(name: str) -> EnergyModelInfo:
    if name not in REGISTRY:
        raise ParameterError("energy_model.name", f"unknown energy model {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def resolve_parameters(model: EnergyModelInfo, given: dict[str, float]) -> dict[str, float]:
    known = {p.name: p for p in model.parameters}
    for name in given:
        if name not in known:
            raise ParameterError(f"energy_model.parameters[{name}]", f"{model.name} has no parameter {name!r}; it has {sorted(known)}")
    out = {}
    for p in model.parameters:
        value = float(given.get(p.name, p.default))
        if not (math.isfinite(value) and p.minimum <= value <= p.maximum):
            raise ParameterError(f"energy_model.parameters[{p.name}]", f"must be finite and in [{p.minimum:g}, {p.maximum:g}], got {value:.4g}")
        out[p.name] = value
    return out


def build(model: EnergyModelInfo, parameters: dict[str, float], external_field: np.ndarray | None,
          dtype: torch.dtype, device: torch.device) -> Phi4 | Ising:
    h: float | torch.Tensor = parameters["h"]
    if external_field is not None:
        h = torch.as_tensor(np.array(external_field), dtype=torch.float32 if model.spin else dtype, device=device) + parameters["h"]
    if model.name == "ising":
        return Ising(J=parameters["J"], h=h)
    if model.name == "gaussian-free-field":
        return Phi4(kappa=parameters["kappa"], a=parameters["mass2"], b=0.0, h=h)
    return Phi4(kappa=parameters["kappa"], a=parameters["a"], b=parameters["b"], h=h)
