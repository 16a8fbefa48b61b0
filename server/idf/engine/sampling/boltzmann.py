"""A whole sampling run: energy model + sampler settings -> samples with measured diagnostics,
progress reports along the way, and a clean stop when asked.

`sample` and `estimate` serve every registered sampler: the chain samplers through one loop
here, samplers that run a whole request themselves (reverse diffusion) through their entry in
`samplers.SAMPLERS`. Nothing here names a model or a sampler: what differs lives in the
registries (`energy_models.REGISTRY`, `samplers.SAMPLERS`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from idf.engine.cost import Cost
from idf.engine.errors import Cancelled, Diverged, ParameterError
from idf.engine.sampling import energy_models
from idf.engine.sampling.energy import Energy, EnergyModel
from idf.engine.sampling.samplers import SAMPLERS, SamplerInfo, replica_ladder
from idf.engine.sampling.spec import (
    MAX_FIELD_VALUE,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    Constraint,
    Progress,
    SampleOutput,
    SampleSpec,
    check_array,
    check_constraint,
    check_temperature,
    total_target,
)
from idf.kernels.random import cpu_generator

__all__ = [
    "MAX_FIELD_VALUE",
    "MAX_TEMPERATURE",
    "MIN_TEMPERATURE",
    "Constraint",
    "Progress",
    "SampleOutput",
    "SampleSpec",
    "effective_sample_size",
    "estimate",
    "itemsize",
    "replica_ladder",
    "sample",
    "tolerance_failures",
]

DEFAULT_STEP = {name: s.default_step for name, s in SAMPLERS.items() if s.gradient}
SAMPLERS_OF_THEIR_OWN = {
    name for name, s in SAMPLERS.items() if s.run is not None
}  # whole-run samplers


def effective_sample_size(
    trace: np.ndarray, should_stop: Callable[[], bool] = lambda: False, site_updates: int = 0
) -> float:
    """Sum over chains of n / tau, tau the integrated autocorrelation time of the chain's energy
    trace (Geyer's initial positive sequence). trace: (steps, chains). Checks `should_stop`
    between chains (Cancelled carries `site_updates`, the sampling work already done)."""
    n, chains = trace.shape
    if n < 4:
        return float(n * chains)
    total = 0.0
    for c in range(chains):
        if should_stop():
            raise Cancelled(site_updates)
        if (
            np.ptp(trace[:, c]) == 0
        ):  # constant: nothing to correlate (its float mean may be inexact,
            total += n  # so the centred trace is not always exactly zero)
            continue
        x = trace[:, c] - trace[:, c].mean()
        var = float(np.dot(x, x) / n)
        if var == 0:  # differences so small their squares underflow: as good as constant
            total += n
            continue
        f = np.fft.rfft(x, 2 * n)
        acf = np.fft.irfft(f * np.conj(f))[:n] / (n * var)
        # tau = -1 + 2 sum of the pair sums acf[t] + acf[t+1] (t even) before the first that is
        # <= 0; a sequential cumulative sum gives the very same floats as the scalar loop did
        m = n // 2
        pairs = acf[0 : 2 * m : 2] + acf[1 : 2 * m : 2]
        stop = int(np.argmax(pairs <= 0)) if np.any(pairs <= 0) else m
        tau = float(np.cumsum(np.concatenate(([-1.0], 2 * pairs[:stop])))[-1])
        total += n / max(tau, 1.0)
    return total


def curvature(model: EnergyModel, params: dict[str, float], ndim: int) -> float:
    """The model's largest curvature near its minima (see its file): a gradient step of size η is
    linearly stable when η·curvature < 2, and the chain of a Gaussian field diverges beyond it."""
    return model.curvature(params, ndim)


def max_step_size(model: EnergyModel, params: dict[str, float], ndim: int) -> float:
    """The largest step size a gradient sampler accepts for this model: the linear stability
    limit 2 / curvature (a flat energy has none; then 1e3 bounds the noise a step adds)."""
    c = curvature(model, params, ndim)
    return min(2.0 / c, 1e3) if c > 0 else 1e3


def _sampler(spec: SampleSpec, model: EnergyModel) -> SamplerInfo:
    kind = spec.sampler or model.default_sampler
    if kind not in model.samplers:
        raise ParameterError(
            "sampler.kind", f"{model.name} samples with {list(model.samplers)}, not {kind}"
        )
    return SAMPLERS[kind]


def _check(spec: SampleSpec, model: EnergyModel, params: dict[str, float]) -> SamplerInfo:
    """Every caller-controlled parameter of a chain sampling run, checked before any work: a
    ParameterError naming the first that is wrong (non-finite, out of range, inconsistent)."""
    sampler = _sampler(spec, model)
    check_temperature("sampler.temperature", spec.temperature)
    extents = (
        str(model.ndims[0]) if len(model.ndims) == 1 else f"{model.ndims[0]} to {model.ndims[-1]}"
    )
    wrong = ParameterError(
        "shape", f"{model.name} takes {extents} positive extents, got {list(spec.shape)[:4]}"
    )
    if not 1 <= len(spec.shape) <= model.ndims[-1] or any(n < 1 for n in spec.shape):
        raise wrong
    refused = model.check_shape(tuple(spec.shape))  # the model's own rule, with its own reason
    if refused:
        raise ParameterError("shape", refused)
    if len(spec.shape) not in model.ndims:
        raise wrong
    if spec.steps < 1:
        raise ParameterError("sampler.steps", f"must be >= 1, got {spec.steps}")
    if spec.count < 1:
        raise ParameterError("sample_count", f"must be >= 1, got {spec.count}")
    if not 0 <= spec.burn_in < spec.steps:
        raise ParameterError("sampler.burn_in", f"must be in [0, steps), got {spec.burn_in}")
    if spec.step_size < 0 or not math.isfinite(spec.step_size):
        raise ParameterError("sampler.step_size", f"must be finite and >= 0, got {spec.step_size}")
    if sampler.gradient:
        limit = max_step_size(model, params, len(spec.shape))
        if spec.step_size > limit:
            raise ParameterError(
                "sampler.step_size",
                f"{spec.step_size:.4g} is too large for this model: gradient steps are "
                f"stable below 2/curvature = {limit:.4g} (0: the default)",
            )
    if spec.max_temperature != 0:
        check_temperature("sampler.max_temperature", spec.max_temperature)
    if sampler.ladder and not spec.temperatures and not spec.max_temperature > spec.temperature:
        raise ParameterError(
            "sampler.max_temperature", f"{sampler.name} needs max_temperature > temperature"
        )
    if spec.temperatures:
        ladder = spec.temperatures
        for i, t in enumerate(ladder):
            check_temperature(f"sampler.temperatures[{i}]", t)
        if ladder[0] != spec.temperature or any(b <= a for a, b in zip(ladder, ladder[1:])):
            raise ParameterError(
                "sampler.temperatures", "an ascending ladder starting at the target temperature"
            )
    for i, c in enumerate(spec.constraints):
        if c.name not in model.constraints:
            raise ParameterError(
                f"energy_model.constraints[{i}].name",
                f"{model.name} supports {list(model.constraints)}",
            )
        check_constraint(i, c, math.prod(spec.shape))
        if c.name not in sampler.constraints:
            enforcing = [
                s.name
                for s in SAMPLERS.values()
                if c.name in s.constraints and s.name in model.samplers
            ]
            raise ParameterError(
                f"energy_model.constraints[{i}]",
                f"exact constraints are enforced by projected Langevin: "
                f"use {' or '.join(enforcing)}",
            )
    check_array("initial", spec.initial, tuple(spec.shape))
    check_array("energy_model.external_field", spec.external_field, tuple(spec.shape))
    return sampler


# Memory per chain-site of one step: the model's measured `step_buffers` (see its file and
# idf.engine.cost) times the state's itemsize, plus one state per replica for replica exchange.
EXTERNAL_FIELD_BYTES_PER_SITE = 64  # copies of h (float64 decode, tensor, + h) shared by the chains
TRACE_BYTES_PER_ENTRY = 16  # the energy trace: float64 per chain per kept step, list then array
TRACE_BYTES_PER_STEP = 120  # one numpy array object and a list slot per kept step


def itemsize(spec: SampleSpec) -> int:
    """Bytes per site of the states a run holds and the samples it returns: int8 for spin
    models (whatever dtype asks), else float64 when asked, float32 by default."""
    spin = spec.sampler not in SAMPLERS_OF_THEIR_OWN and energy_models.info(spec.model).spin
    return 1 if spin else (8 if spec.dtype == "float64" else 4)


def estimate(spec: SampleSpec) -> Cost:
    """The cost of `sample(spec)` before it runs: no allocation, no model loaded. Raises the
    ParameterError `sample` would raise for a spec it refuses. site_updates = sites x chains x
    steps x replicas (the replicas of replica exchange; reverse diffusion: denoiser evaluations
    x sites), exactly what a completed run reports."""
    if spec.sampler and spec.sampler in SAMPLERS and SAMPLERS[spec.sampler].estimate is not None:
        return SAMPLERS[spec.sampler].estimate(spec)  # type: ignore[misc]
    model = energy_models.info(spec.model)
    params = energy_models.resolve_parameters(model, spec.parameters)
    sampler = _check(spec, model, params)
    sites = math.prod(spec.shape)
    replicas = sampler.replicas(spec)
    per_chain_site = itemsize(spec) * (
        model.step_buffers[sampler.name] + (replicas if sampler.keeps_replicas else 0)
    )
    kept = spec.steps - spec.burn_in
    state = spec.count * sites * per_chain_site
    if spec.external_field is not None:
        state += sites * EXTERNAL_FIELD_BYTES_PER_SITE
    trace = kept * (spec.count * TRACE_BYTES_PER_ENTRY + TRACE_BYTES_PER_STEP)
    return Cost(site_updates=sites * spec.count * spec.steps * replicas, state_bytes=state + trace)


FINITE_CHECK_EVERY = 8  # steps between checks that every chain's energy is finite (one sync)


def _default_step(kind: str, model: EnergyModel, params: dict[str, float], ndim: int) -> float:
    """The sampler's default step, unless it is past this model's stability limit (where the
    chain would diverge): then half that limit."""
    default = SAMPLERS[kind].default_step
    limit = max_step_size(model, params, ndim)
    return default if default < limit else limit / 2


def _diverged(k: int, eta: float, kind: str, site_updates: int) -> Diverged:
    if SAMPLERS[kind].accepts:
        reason = (
            f"the chain's energy overflowed at step {k}: the model's parameters, the initial state or the "
            f"temperature put it beyond floating-point range"
        )
        return Diverged("energy_model.parameters", reason, step=k, site_updates=site_updates)
    reason = (
        f"step_size {eta:.4g} too large for this model and temperature: the chain diverged (non-finite "
        f"energy) at step {k}; try step_size <= {eta / 4:.3g}"
    )
    return Diverged("sampler.step_size", reason, step=k, site_updates=site_updates)


def _check_finite(energy: torch.Tensor, k: int, eta: float, kind: str, site_updates: int) -> None:
    if not bool(torch.isfinite(energy).all()):
        raise _diverged(k, eta, kind, site_updates)


def _check_initial_energy(x: torch.Tensor, energy: Energy, ndim: int, spec: SampleSpec) -> None:
    """The energy of the starting state must be finite, else no sampler can move from it."""
    if not bool(torch.isfinite(energy.energy(x[:1], ndim)).all()):
        name = "initial" if spec.initial is not None else "energy_model.external_field"
        raise ParameterError(
            name, "the energy of the initial state overflows: values too large for this model"
        )


def sample(
    spec: SampleSpec,
    *,
    progress: Callable[[Progress], None] = lambda p: None,
    progress_every: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
    device: str | torch.device = "cpu",
) -> SampleOutput:
    if spec.sampler and spec.sampler in SAMPLERS and SAMPLERS[spec.sampler].run is not None:
        return SAMPLERS[spec.sampler].run(
            spec, progress=progress, should_stop=should_stop, device=device
        )  # type: ignore[misc]
    model = energy_models.info(spec.model)
    params = energy_models.resolve_parameters(model, spec.parameters)
    sampler = _check(spec, model, params)
    kind = sampler.name
    device = torch.device(device)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    energy = energy_models.build(model, params, spec.external_field, dtype, device)
    ndim = len(spec.shape)
    count = spec.count
    gen = cpu_generator(spec.seed, 2**40)
    if spec.initial is not None:
        init = torch.as_tensor(np.asarray(spec.initial)).expand(count, *spec.shape).clone()
    else:
        init = model.initial(count, tuple(spec.shape), gen)
    x = init.to(model.state_dtype(dtype)).to(device)
    refused = model.check_initial(x)
    if refused:
        raise ParameterError("initial", refused)
    eta = spec.step_size or (_default_step(kind, model, params, ndim) if sampler.gradient else 0.0)
    sites = math.prod(spec.shape)
    replicas = sampler.replicas(spec)
    if not model.spin:
        _check_initial_energy(x, energy, ndim, spec)
    assert sampler.make is not None  # a sampler without `make` runs whole requests (above)
    s = sampler.make(x, energy, spec, eta, ndim, should_stop)
    every = progress_every or max(1, spec.steps // 20)
    start = time.perf_counter()
    trace = []
    accepted = torch.zeros(count, dtype=torch.float64, device=device)
    window = torch.zeros(count, dtype=torch.float64, device=device)
    n_window = 0
    for k in range(spec.steps):
        if should_stop():
            raise Cancelled(sites * count * k * replicas)
        step = s.step(k)
        if (k + 1) % FINITE_CHECK_EVERY == 0 or k + 1 == spec.steps:
            _check_finite(step.energy, k, eta, kind, sites * count * (k + 1) * replicas)
        if step.accepted is not None:
            acc = step.accepted.to(torch.float64)
            window += acc
            n_window += 1
            if k >= spec.burn_in:
                accepted += acc
        if k >= spec.burn_in:
            trace.append(step.energy.detach().cpu().numpy())
        if (k + 1) % every == 0 or k + 1 == spec.steps:
            rate = float(window.mean()) / n_window if n_window else float("nan")
            progress(Progress(k + 1, spec.steps, step.temperature, float(step.energy.mean()), rate))
            window.zero_()
            n_window = 0
    seconds = time.perf_counter() - start
    x = s.x
    final = energy.energy(x, ndim)
    samples = x.cpu().numpy()
    grid_axes = tuple(range(1, samples.ndim))
    totals = samples.sum(grid_axes, dtype=np.float64)
    target = total_target(spec)
    residual = np.abs(totals - target) if target is not None else np.zeros(count)
    work = sites * count * spec.steps * replicas
    if not (np.all(np.isfinite(samples)) and bool(torch.isfinite(final).all())):
        raise _diverged(spec.steps - 1, eta, kind, work)
    kept = spec.steps - spec.burn_in
    rates = (accepted / kept).cpu().numpy() if sampler.accepts else np.full(count, np.nan)
    return SampleOutput(
        samples=samples,
        energy=final.cpu().numpy(),
        total=totals,
        constraint_residual=residual,
        acceptance_rate=rates,
        compute_seconds=seconds,
        site_updates=work,
        effective_sample_size=effective_sample_size(np.asarray(trace), should_stop, work),
    )


def tolerance_failures(spec: SampleSpec, out: SampleOutput) -> Sequence[str]:
    """Constraints a sample misses by more than their tolerance (never passed silently)."""
    failures = []
    for i, c in enumerate(spec.constraints):
        tol = c.tolerance or 1e-6 * max(1.0, abs(c.target))
        worst = float(out.constraint_residual.max())
        if worst > tol:
            failures.append(
                f"constraints[{i}] ({c.name} = {c.target}): residual {worst:.3g} > tolerance {tol:.3g}"
            )
    return failures
