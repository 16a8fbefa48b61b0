"""The physics forecaster: repeated conservative transport steps (`idf.kernels.transport`).
`Physics` serves it behind the `Forecaster` protocol (idf.engine.forecast.base)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from idf.engine.cost import Cost
from idf.engine.errors import Cancelled, Diverged, ParameterError
from idf.engine.forecast.base import Forecast, ForecastRequest, spatial_total
from idf.kernels import transport

__all__ = [
    "PHYSICS_MODEL",
    "Forecast",
    "ForecastResult",
    "Physics",
    "TransportSpec",
    "estimate",
    "physics_forecast",
    "spatial_total",
]

PHYSICS_MODEL = "physics-advection-diffusion"
DEFAULT_CFL = 0.9
FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))


@dataclass(frozen=True)
class TransportSpec:
    """Physical parameters of du/dt + div(v u) = div(kappa grad u) + s on the field's grid."""

    diffusivity: float = 0.0
    velocity: tuple[float, ...] = ()
    dt: float = 0.0  # 0: the largest step with CFL number DEFAULT_CFL
    substeps: int = 1
    spacing: tuple[float, ...] = ()
    boundary: str = "periodic"
    boundary_value: float = 0.0


ForecastResult = Forecast  # the name this module's callers knew


def _resolve(spec: TransportSpec, shape: tuple[int, ...]) -> tuple[TransportSpec, float]:
    """Check the spec against the grid, fill defaults; returns (spec, cfl number)."""
    ndim = len(shape)
    if not 1 <= ndim <= 3:
        raise ParameterError("shape", f"the physics forecaster takes 1 to 3 axes, got {ndim}")
    spacing = spec.spacing or (1.0,) * ndim
    if len(spacing) != ndim or not all(math.isfinite(h) and h > 0 for h in spacing):
        raise ParameterError("spacing", f"needs {ndim} finite values > 0, got {list(spacing)}")
    if not (math.isfinite(spec.diffusivity) and spec.diffusivity >= 0):
        raise ParameterError("diffusivity", f"must be finite and >= 0, got {spec.diffusivity}")
    velocity = spec.velocity or (0.0,) * ndim
    if len(velocity) != ndim:
        raise ParameterError(
            "velocity", f"needs one component per axis ({ndim}), got {len(velocity)}"
        )
    if not all(math.isfinite(v) for v in velocity):
        raise ParameterError("velocity", "components must be finite")
    if spec.boundary not in transport.BOUNDARIES:
        raise ParameterError("boundary", f"must be one of {transport.BOUNDARIES}")
    if not math.isfinite(spec.boundary_value):
        raise ParameterError("boundary_value", "must be finite")
    if spec.substeps < 1:
        raise ParameterError("substeps", f"must be >= 1, got {spec.substeps}")
    if not (math.isfinite(spec.dt) and spec.dt >= 0):
        raise ParameterError("dt", f"must be finite and >= 0, got {spec.dt}")
    dt = spec.dt
    if dt == 0:
        dt = transport.stable_dt(spacing, spec.diffusivity, velocity, DEFAULT_CFL)
        dt = 1.0 if math.isinf(dt) else dt  # nothing moves: any step is exact
    cfl = transport.cfl_number(dt, spacing, spec.diffusivity, velocity)
    if cfl > 1.0:
        limit = transport.stable_dt(spacing, spec.diffusivity, velocity, 1.0)
        raise ParameterError(
            "dt", f"unstable: CFL number {cfl:.4g} > 1; the largest stable dt is {limit:.6g}"
        )
    resolved = TransportSpec(
        spec.diffusivity,
        tuple(velocity),
        dt,
        spec.substeps,
        tuple(spacing),
        spec.boundary,
        spec.boundary_value,
    )
    return resolved, cfl


# Field-sized buffers the torch stepper holds at once besides the returned frames, measured by
# `python -m idf.engine.cost` (1 to 3 axes, float32 and float64): the state, its update and the
# face-flux temporaries, 7 when periodic; walls (torch.cat of ghost faces) and a source (its copy
# and dt*source) raise it to 16.3 on a cold process. Rounded up.
WORKING_BUFFERS = {"periodic": 10}
WALL_WORKING_BUFFERS = 18


def estimate(
    history_shape: Sequence[int], dtype: np.dtype | str, steps: int, spec: TransportSpec
) -> Cost:
    """The cost of `physics_forecast` from a present frame of `history_shape` (the shape of one
    frame, its grid) and `dtype` (see idf.engine.cost). Work: sites x steps x substeps, what the
    forecast reports; state: the returned frames plus the stepper's working buffers. Pure
    arithmetic that never raises (the forecast itself checks the spec)."""
    sites = math.prod(int(n) for n in history_shape)
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        itemsize = 8
    steps, substeps = max(0, int(steps)), max(1, int(spec.substeps))
    working = WORKING_BUFFERS.get(spec.boundary, WALL_WORKING_BUFFERS)
    return Cost(
        site_updates=sites * steps * substeps, state_bytes=sites * itemsize * (steps + working)
    )


FINITE_CHECK_EVERY = 16  # solver steps between checks that the field is finite (and every frame)


def _overflow(k: int, site_updates: int) -> Diverged:
    """A CFL-stable conservative step only overflows when the values themselves are near the
    dtype's range: the history (or the source) is too large."""
    return Diverged(
        "history",
        f"the forecast left the dtype's range at frame {k}: the field's values (or the "
        f"source's) are too large; rescale them",
        step=k,
        site_updates=site_updates,
    )


def check(
    history: Sequence[np.ndarray], steps: int, spec: TransportSpec, source: np.ndarray | None = None
) -> tuple[TransportSpec, float]:
    """Every rule of a physics forecast, before any work: ParameterError on the first broken
    one; else the spec with its defaults filled and its CFL number."""
    if not history:
        raise ParameterError("history", "needs at least one frame")
    present = history[-1]
    if present.dtype not in FLOAT_DTYPES:
        raise ParameterError(
            "dtype", f"the physics forecaster takes float32 or float64, got {present.dtype}"
        )
    if not np.all(np.isfinite(present)):
        raise ParameterError("history", "contains NaN or Inf")
    if steps < 1:
        raise ParameterError("steps", f"must be >= 1, got {steps}")
    resolved = _resolve(spec, present.shape)
    if source is not None:
        if source.shape != present.shape:
            raise ParameterError("source", f"shape {source.shape} != field shape {present.shape}")
        if not np.all(np.isfinite(source)):
            raise ParameterError("source", "contains NaN or Inf")
    return resolved


def physics_forecast(
    history: Sequence[np.ndarray],
    steps: int,
    spec: TransportSpec,
    *,
    source: np.ndarray | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    device: str | torch.device | None = None,
) -> ForecastResult:
    """Advance the last frame of `history` by `steps` frames of `spec.substeps` solver steps.

    Raises ParameterError for a domain violation and Cancelled when `should_stop()` turns true
    between solver steps. `device` defaults to CUDA when available (the Triton kernel), else CPU.
    """
    spec, cfl = check(history, steps, spec, source)
    present = history[-1]

    start = time.perf_counter()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    u = torch.tensor(present, device=device)  # one copy: wire buffers are read-only
    s = torch.tensor(source, dtype=u.dtype, device=device) if source is not None else None
    frames = np.empty((steps, *present.shape), dtype=present.dtype)
    kwargs = dict(
        dt=spec.dt,
        spacing=spec.spacing,
        diffusivity=spec.diffusivity,
        velocity=spec.velocity,
        boundary=spec.boundary,
        boundary_value=spec.boundary_value,
        source=s,
    )
    with torch.inference_mode():
        for k in range(steps):
            for j in range(spec.substeps):
                done = k * spec.substeps + j
                if should_stop():
                    raise Cancelled(int(present.size) * done)
                u = transport.transport_step(u, **kwargs)
                if (done + 1) % FINITE_CHECK_EVERY == 0 and not bool(torch.isfinite(u).all()):
                    raise _overflow(k, int(present.size) * (done + 1))
            if not bool(torch.isfinite(u).all()):
                raise _overflow(k, int(present.size) * (k + 1) * spec.substeps)
            frames[k] = u.cpu().numpy()
    seconds = time.perf_counter() - start
    totals = np.array([spatial_total(f, spec.spacing) for f in frames])
    return Forecast(
        frames=frames,
        frame_interval=spec.dt * spec.substeps,
        dt=spec.dt,
        cfl=cfl,
        totals=totals,
        site_updates=int(present.size) * steps * spec.substeps,
        compute_seconds=seconds,
    )


class Physics:
    """The physics forecaster behind the `Forecaster` protocol."""

    name = PHYSICS_MODEL
    learned = False
    outputs_per_step = 1

    @staticmethod
    def spec(request: ForecastRequest) -> TransportSpec:
        return TransportSpec(
            diffusivity=request.diffusivity,
            velocity=tuple(request.velocity),
            dt=request.dt,
            substeps=request.substeps,
            spacing=tuple(request.spacing),
            boundary=request.boundary,
            boundary_value=request.boundary_value,
        )

    def check(self, request: ForecastRequest) -> None:
        check(request.history, request.steps, self.spec(request), request.source)

    def estimate(self, request: ForecastRequest) -> Cost:
        present = request.history[-1] if request.history else np.zeros(0)
        return estimate(present.shape, present.dtype, request.steps, self.spec(request))

    def run(
        self,
        request: ForecastRequest,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        device: str | torch.device | None = None,
    ) -> Forecast:
        return physics_forecast(
            request.history,
            request.steps,
            self.spec(request),
            source=request.source,
            should_stop=should_stop,
            device=device,
        )
