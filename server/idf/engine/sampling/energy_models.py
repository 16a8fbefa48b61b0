"""The energy-model registry: what `Sample` accepts, with parameters, defaults and ranges.

Each model lives in its own file under `idf.engine.sampling.models` (an `EnergyModel`, see
idf.engine.sampling.energy); adding one is that file, one entry in `MODELS` and its tests."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from idf.engine.errors import ParameterError
from idf.engine.sampling.energy import BOUND, Energy, EnergyModel, Parameter
from idf.engine.sampling.models import ising, phi4, xy

MODELS: tuple[EnergyModel, ...] = (phi4.GAUSSIAN_FREE_FIELD, phi4.PHI4, ising.ISING, xy.XY)
REGISTRY: dict[str, EnergyModel] = {m.name: m for m in MODELS}

__all__ = [
    "BOUND",
    "MODELS",
    "REGISTRY",
    "EnergyModel",
    "Parameter",
    "build",
    "info",
    "resolve_parameters",
]


def info(name: str) -> EnergyModel:
    if name not in REGISTRY:
        raise ParameterError(
            "energy_model.name", f"unknown energy model {name!r}; known: {sorted(REGISTRY)}"
        )
    return REGISTRY[name]


def resolve_parameters(model: EnergyModel, given: Mapping[str, float]) -> dict[str, float]:
    known = {p.name: p for p in model.parameters}
    for name in given:
        if name not in known:
            raise ParameterError(
                f"energy_model.parameters[{name}]",
                f"{model.name} has no parameter {name!r}; it has {sorted(known)}",
            )
    out = {}
    for p in model.parameters:
        value = float(given.get(p.name, p.default))
        if not (math.isfinite(value) and p.minimum <= value <= p.maximum):
            raise ParameterError(
                f"energy_model.parameters[{p.name}]",
                f"must be finite and in [{p.minimum:g}, {p.maximum:g}], got {value:.4g}",
            )
        out[p.name] = value
    return out


def build(
    model: EnergyModel,
    parameters: Mapping[str, float],
    external_field: np.ndarray | None,
    dtype: torch.dtype,
    device: torch.device,
) -> Energy:
    """The model bound to resolved parameters and an optional external field map (added to the
    uniform field parameter h)."""
    return model.bind(parameters, external_field, dtype, device)
