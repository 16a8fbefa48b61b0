"""What a sampling run is asked for and what it returns, shared by every sampler (the Boltzmann
chains of `boltzmann` and the learned reverse diffusion of `reverse_diffusion`), with the checks
of the values every sampler takes the same way: temperatures, constraints, input arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from idf.engine.errors import ParameterError

MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-6, 1e6  # energy units: beyond them exp(-E/T) under/overflows
MAX_FIELD_VALUE = 1e6  # |mean value| a constraint may impose, and |value| of initial states


@dataclass(frozen=True)
class Constraint:
    name: str
    target: float
    tolerance: float
    weight: float


@dataclass(frozen=True)
class SampleSpec:
    model: str
    parameters: dict[str, float]
    shape: tuple[int, ...]
    sampler: str = ""  # "" = the model's default
    temperature: float = 1.0
    step_size: float = 0.0
    steps: int = 1000
    burn_in: int = 0
    max_temperature: float = 0.0
    temperatures: tuple[float, ...] = ()
    count: int = 1
    seed: int = 0
    external_field: np.ndarray | None = None
    initial: np.ndarray | None = None
    constraints: tuple[Constraint, ...] = ()
    dtype: str = ""
    denoiser: str = ""  # reverse diffusion: the learned model ("" = the shipped default)
    guidance_scale: float = 0.0  # reverse diffusion: weight of the energy's gradient


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    temperature: float
    mean_energy: float
    acceptance_rate: float


@dataclass
class SampleOutput:
    samples: np.ndarray  # (count, *shape)
    energy: np.ndarray  # (count,)
    total: np.ndarray
    constraint_residual: np.ndarray
    acceptance_rate: np.ndarray
    effective_sample_size: float
    site_updates: int
    compute_seconds: float
    extras: dict[str, float] = field(default_factory=dict)


def temperature_ok(t: float) -> bool:
    return math.isfinite(t) and MIN_TEMPERATURE <= t <= MAX_TEMPERATURE


def check_temperature(path: str, t: float) -> None:
    if not temperature_ok(t):
        raise ParameterError(
            path, f"must be finite and in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], got {t}"
        )


def check_constraint(i: int, c: Constraint, sites: int) -> None:
    """A constraint's numbers: exact enforcement only, a finite target a field of `sites` sites
    can reach, a finite tolerance. Which constraints a model and a sampler support is theirs."""
    if c.weight != 0:
        raise ParameterError(
            f"energy_model.constraints[{i}].weight",
            "only exact enforcement (weight 0) is supported",
        )
    if not (math.isfinite(c.target) and abs(c.target) <= MAX_FIELD_VALUE * sites):
        raise ParameterError(
            f"energy_model.constraints[{i}].target",
            f"must be finite with |target| / sites <= {MAX_FIELD_VALUE:g}, got {c.target:.4g}",
        )
    if not (math.isfinite(c.tolerance) and c.tolerance >= 0):
        raise ParameterError(
            f"energy_model.constraints[{i}].tolerance",
            f"must be finite and >= 0, got {c.tolerance:.4g}",
        )


def check_array(name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> None:
    """An input grid (initial state, external field): the run's shape, numeric, finite, bounded."""
    if array is None:
        return
    if array.shape != shape:
        raise ParameterError(name, f"shape {list(array.shape)[:4]} differs from {list(shape)}")
    if array.dtype.kind not in "biuf":
        raise ParameterError(name, f"must be numeric, got {array.dtype}")
    if not np.all(np.isfinite(array)) or (
        array.size and float(np.max(np.abs(array))) > MAX_FIELD_VALUE
    ):
        raise ParameterError(name, f"values must be finite with |value| <= {MAX_FIELD_VALUE:g}")


def total_target(spec: SampleSpec) -> float | None:
    """The exact `total` constraint's target (Σx = target), if the spec has one."""
    return next((c.target for c in spec.constraints if c.name == "total"), None)
