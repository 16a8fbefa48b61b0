"""What every forecaster takes and returns, and the protocol `Predict` calls them through.

A `Forecaster` checks a `ForecastRequest` (cheap, no model loaded: every rule of the request in
one place), estimates its `Cost` (pure arithmetic, see idf.engine.cost), and runs it into one
`Forecast` type: frames, and for ensembles their per-pixel spread. `run` checks again (it is a
public entry point), so a forecaster cannot be run on a request it would refuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from idf.engine.cost import Cost


@dataclass(frozen=True)
class ForecastRequest:
    """A forecast as the API asks for it (proto PredictRequest, decoded). Each forecaster reads
    the fields it uses and refuses what it cannot serve."""

    history: Sequence[np.ndarray]  # frames, oldest first, one layout
    steps: int
    spacing: tuple[float, ...] = ()
    boundary: str = "periodic"
    boundary_value: float = 0.0
    # the physics forecaster: du/dt + div(v u) = div(kappa grad u) + s
    diffusivity: float = 0.0
    velocity: tuple[float, ...] = ()
    dt: float = 0.0
    substeps: int = 1
    source: np.ndarray | None = None
    # learned forecasters
    reynolds: float | None = None  # the flow's Reynolds number, when the caller states it
    members: int = 0  # ensemble members (0: the forecaster's default)
    seed: int = 0


@dataclass(frozen=True)
class Forecast:
    frames: np.ndarray  # (steps, *shape), dtype of the input; an ensemble's mean
    frame_interval: float
    totals: np.ndarray  # float64 spatial total (values x cell volume) of each frame
    cfl: float
    site_updates: int
    compute_seconds: float
    stddev: np.ndarray | None = None  # (steps, *shape): an ensemble's per-pixel spread
    dt: float = 0.0  # the solver's step, where there is one


class Forecaster(Protocol):
    name: str
    learned: bool  # a learned model: its work weighs more per site update (admission)
    outputs_per_step: int  # frame-sized arrays the answer carries per step (frames, stddev)

    def check(self, request: ForecastRequest) -> None: ...

    def estimate(self, request: ForecastRequest) -> Cost: ...

    def run(
        self,
        request: ForecastRequest,
        *,
        should_stop: Callable[[], bool] = ...,
        device: str | torch.device | None = None,
    ) -> Forecast: ...


def spatial_total(u: np.ndarray, spacing: Sequence[float]) -> float:
    """Sum of values times cell volume, accumulated in float64."""
    return float(np.sum(u, dtype=np.float64) * math.prod(spacing))
