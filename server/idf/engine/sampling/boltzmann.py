"""A whole sampling run: energy model + sampler settings -> samples with measured diagnostics,
progress reports along the way, and a clean stop when asked."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from idf.engine.cost import Cost
from idf.engine.errors import Cancelled, Diverged, ParameterError
from idf.engine.sampling import energy_models, samplers
from idf.kernels.ising import ising_energy
from idf.kernels.phi4 import phi4
from idf.kernels.random import cpu_generator

DEFAULT_STEP = {"langevin": 0.05, "mala": 0.01, "annealed-langevin": 0.05, "replica-exchange": 0.01}


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


def effective_sample_size(trace: np.ndarray, should_stop: Callable[[], bool] = lambda: False,
                          site_updates: int = 0) -> float:
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
        if np.ptp(trace[:, c]) == 0:  # constant: nothing to correlate (its float mean may be inexact,
            total += n                # so the centred trace is not always exactly zero)
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


def replica_ladder(spec: SampleSpec, rungs: int = 8) -> list[float]:
    """The replica-exchange temperatures: as given, else `rungs` geometric from T to T_max."""
    if spec.temperatures:
        return list(spec.temperatures)
    ratio = spec.max_temperature / spec.temperature
    return [spec.temperature * ratio ** (i / (rungs - 1)) for i in range(rungs)]


MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-6, 1e6  # energy units: beyond them exp(-E/T) under/overflows
MAX_FIELD_VALUE = 1e6  # |mean value| a constraint may impose, and |value| of initial states
GRADIENT_SAMPLERS = ("langevin", "annealed-langevin", "mala", "replica-exchange")


def curvature(info: energy_models.EnergyModelInfo, params: dict[str, float], ndim: int) -> float:
    """The largest curvature of the energy near its minima: 4·ndim·κ from the lattice Laplacian
    plus a (or -2a at the double well's minima φ² = -a/b). A gradient step of size η is linearly
    stable when η·curvature < 2: the Langevin chain of a Gaussian field diverges beyond it."""
    if info.spin:
        return 0.0
    kappa = params["kappa"]
    a = params.get("mass2", params.get("a", 0.0))
    b = params.get("b", 0.0)
    return 4 * ndim * kappa + (a if a >= 0 else (-2 * a if b > 0 else 0.0))


def max_step_size(info: energy_models.EnergyModelInfo, params: dict[str, float], ndim: int) -> float:
    """The largest step size a gradient sampler accepts for this model: the linear stability
    limit 2 / curvature (a flat energy has none; then 1e3 bounds the noise a step adds)."""
    c = curvature(info, params, ndim)
    return min(2.0 / c, 1e3) if c > 0 else 1e3


def _temperature_ok(t: float) -> bool:
    return math.isfinite(t) and MIN_TEMPERATURE <= t <= MAX_TEMPERATURE


def _check(spec: SampleSpec, info: energy_models.EnergyModelInfo, params: dict[str, float]) -> str:
    """Every caller-controlled parameter of a sampling run, checked before any work: a
    ParameterError naming the first that is wrong (non-finite, out of range, inconsistent)."""
    sampler = spec.sampler or ("gibbs" if info.spin else "mala")
    if sampler not in info.samplers:
        raise ParameterError("sampler.kind", f"{info.name} samples with {list(info.samplers)}, not {sampler}")
    if not _temperature_ok(spec.temperature):
        raise ParameterError("sampler.temperature", f"must be finite and in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], got {spec.temperature}")
    if not 1 <= len(spec.shape) <= (2 if info.spin else 3) or any(n < 1 for n in spec.shape):
        raise ParameterError("shape", f"{info.name} takes {'2' if info.spin else '1 to 3'} positive extents, got {list(spec.shape)[:4]}")
    if info.spin and (len(spec.shape) != 2 or spec.shape[0] % 2 or spec.shape[1] % 2):
        raise ParameterError("shape", "Ising lattices are 2-D with even sides (checkerboard updates)")
    if spec.steps < 1:
        raise ParameterError("sampler.steps", f"must be >= 1, got {spec.steps}")
    if spec.count < 1:
        raise ParameterError("sample_count", f"must be >= 1, got {spec.count}")
    if not 0 <= spec.burn_in < spec.steps:
        raise ParameterError("sampler.burn_in", f"must be in [0, steps), got {spec.burn_in}")
    if spec.step_size < 0 or not math.isfinite(spec.step_size):
        raise ParameterError("sampler.step_size", f"must be finite and >= 0, got {spec.step_size}")
    if sampler in GRADIENT_SAMPLERS:
        limit = max_step_size(info, params, len(spec.shape))
        if spec.step_size > limit:
            raise ParameterError("sampler.step_size", f"{spec.step_size:.4g} is too large for this model: gradient steps are "
                                                      f"stable below 2/curvature = {limit:.4g} (0: the default)")
    if spec.max_temperature != 0 and not _temperature_ok(spec.max_temperature):
        raise ParameterError("sampler.max_temperature", f"must be finite and in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], "
                                                        f"got {spec.max_temperature:.4g}")
    if sampler in ("annealed-langevin", "replica-exchange") and not spec.temperatures:
        if not spec.max_temperature > spec.temperature:
            raise ParameterError("sampler.max_temperature", f"{sampler} needs max_temperature > temperature")
    if spec.temperatures:
        ladder = spec.temperatures
        for i, t in enumerate(ladder):
            if not _temperature_ok(t):
                raise ParameterError(f"sampler.temperatures[{i}]", f"must be finite and in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], got {t:.4g}")
        if ladder[0] != spec.temperature or any(b <= a for a, b in zip(ladder, ladder[1:])):
            raise ParameterError("sampler.temperatures", "an ascending ladder starting at the target temperature")
    sites = math.prod(spec.shape)
    for i, c in enumerate(spec.constraints):
        if c.name not in info.constraints:
            raise ParameterError(f"energy_model.constraints[{i}].name", f"{info.name} supports {list(info.constraints)}")
        if c.weight != 0:
            raise ParameterError(f"energy_model.constraints[{i}].weight", "only exact enforcement (weight 0) is supported")
        if not (math.isfinite(c.target) and abs(c.target) <= MAX_FIELD_VALUE * sites):
            raise ParameterError(f"energy_model.constraints[{i}].target", f"must be finite with |target| / sites <= {MAX_FIELD_VALUE:g}, "
                                                                         f"got {c.target:.4g}")
        if not (math.isfinite(c.tolerance) and c.tolerance >= 0):
            raise ParameterError(f"energy_model.constraints[{i}].tolerance", f"must be finite and >= 0, got {c.tolerance:.4g}")
        if sampler not in ("langevin", "annealed-langevin"):
            raise ParameterError(f"energy_model.constraints[{i}]", "exact constraints are enforced by projected Langevin: use langevin or annealed-langevin")
    for name, array in (("initial", spec.initial), ("energy_model.external_field", spec.external_field)):
        if array is None:
            continue
        if array.shape != spec.shape:
            raise ParameterError(name, f"shape {list(array.shape)[:4]} differs from {list(spec.shape)}")
        if array.dtype.kind not in "biuf":
            raise ParameterError(name, f"must be numeric, got {array.dtype}")
        if not np.all(np.isfinite(array)) or (array.size and float(np.max(np.abs(array))) > MAX_FIELD_VALUE):
            raise ParameterError(name, f"values must be finite with |value| <= {MAX_FIELD_VALUE:g}")
    return sampler


# Peak bytes per chain-site of one step on the CPU path, as multiples of the state's itemsize
# (measured by `python -m idf.engine.cost`, see idf.engine.cost; measured 11, 14.6, 13 + R and
# 67 B, plus ~5% for a cold process): the state, the noise, the
# Laplacian and bond temporaries of the step and of the energy evaluation. Replica exchange keeps
# one state per replica plus one MALA step's temporaries. Gibbs holds int8 spins but computes in
# float32 (local fields, uniforms) and float64 (energies): bytes, not buffers.
STEP_BUFFERS = {"langevin": 12, "annealed-langevin": 12, "mala": 15, "replica-exchange": 14}
GIBBS_BYTES_PER_SITE = 68
EXTERNAL_FIELD_BYTES_PER_SITE = 64  # copies of h (float64 decode, tensor, + h) shared by the chains
TRACE_BYTES_PER_ENTRY = 16  # the energy trace: float64 per chain per kept step, list then array
TRACE_BYTES_PER_STEP = 120  # one numpy array object and a list slot per kept step


def estimate(spec: SampleSpec) -> Cost:
    """The cost of `sample(spec)` before it runs: no allocation, no model loaded. Raises the
    ParameterError `sample` would raise for a spec it refuses. site_updates = sites x chains x
    steps x replicas (the replicas of replica exchange; reverse diffusion: denoiser evaluations
    x sites), exactly what a completed run reports."""
    if spec.sampler == "reverse-diffusion":
        from idf.engine.sampling import reverse_diffusion as generation

        return generation.estimate(spec)
    info = energy_models.info(spec.model)
    params = energy_models.resolve_parameters(info, spec.parameters)
    kind = _check(spec, info, params)
    sites = math.prod(spec.shape)
    replicas = len(replica_ladder(spec)) if kind == "replica-exchange" else 1
    if info.spin:
        per_chain_site = GIBBS_BYTES_PER_SITE
    else:
        itemsize = 8 if spec.dtype == "float64" else 4
        per_chain_site = itemsize * (STEP_BUFFERS[kind] + (replicas if kind == "replica-exchange" else 0))
    kept = spec.steps - spec.burn_in
    state = spec.count * sites * per_chain_site
    if spec.external_field is not None:
        state += sites * EXTERNAL_FIELD_BYTES_PER_SITE
    trace = kept * (spec.count * TRACE_BYTES_PER_ENTRY + TRACE_BYTES_PER_STEP)
    return Cost(site_updates=sites * spec.count * spec.steps * replicas, state_bytes=state + trace)


FINITE_CHECK_EVERY = 8  # steps between checks that every chain's energy is finite (one sync)


def _default_step(kind: str, info: energy_models.EnergyModelInfo, params: dict[str, float], ndim: int) -> float:
    """DEFAULT_STEP, unless it is past this model's stability limit (where the chain would
    diverge): then half that limit."""
    default = DEFAULT_STEP.get(kind, 0.0)
    limit = max_step_size(info, params, ndim)
    return default if default < limit else limit / 2


def _diverged(k: int, eta: float, kind: str, site_updates: int) -> Diverged:
    if kind in ("mala", "replica-exchange"):
        reason = (f"the chain's energy overflowed at step {k}: the model's parameters, the initial state or the "
                  f"temperature put it beyond floating-point range")
        return Diverged("energy_model.parameters", reason, step=k, site_updates=site_updates)
    reason = (f"step_size {eta:.4g} too large for this model and temperature: the chain diverged (non-finite "
              f"energy) at step {k}; try step_size <= {eta / 4:.3g}")
    return Diverged("sampler.step_size", reason, step=k, site_updates=site_updates)


def _check_finite(energy: torch.Tensor, k: int, eta: float, kind: str, site_updates: int) -> None:
    if not bool(torch.isfinite(energy).all()):
        raise _diverged(k, eta, kind, site_updates)


def _check_initial_energy(x: torch.Tensor, model: object, ndim: int, spec: SampleSpec) -> None:
    """The energy of the starting state must be finite, else no sampler can move from it."""
    first = x[:1]
    if not bool(torch.isfinite(phi4(first, model, ndim).energy).all()):  # type: ignore[arg-type]
        name = "initial" if spec.initial is not None else "energy_model.external_field"
        raise ParameterError(name, "the energy of the initial state overflows: values too large for this model")


def sample(
    spec: SampleSpec,
    *,
    progress: Callable[[Progress], None] = lambda p: None,
    progress_every: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
    device: str | torch.device = "cpu",
) -> SampleOutput:
    if spec.sampler == "reverse-diffusion":
        from idf.engine.sampling import (
            reverse_diffusion as generation,  # the learned path loads its checkpoint only when asked
        )

        return generation.generate(spec, progress=progress, should_stop=should_stop, device=device)
    info = energy_models.info(spec.model)
    params = energy_models.resolve_parameters(info, spec.parameters)
    kind = _check(spec, info, params)
    device = torch.device(device)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    model = energy_models.build(info, params, spec.external_field, dtype, device)
    ndim = len(spec.shape)
    count = spec.count
    gen = cpu_generator(spec.seed, 2**40)
    if spec.initial is not None:
        init = torch.as_tensor(np.asarray(spec.initial)).expand(count, *spec.shape).clone()
    elif info.spin:
        init = torch.randint(0, 2, (count, *spec.shape), generator=gen) * 2 - 1
    else:
        init = torch.zeros((count, *spec.shape))
    x = init.to(torch.int8 if info.spin else dtype).to(device)
    if info.spin and not torch.all((x == 1) | (x == -1)):
        raise ParameterError("initial", "Ising states are +1/-1")
    total_target = next((c.target for c in spec.constraints if c.name == "total"), None)
    eta = spec.step_size or _default_step(kind, info, params, ndim)
    ladder = replica_ladder(spec) if kind == "replica-exchange" else []
    sites = math.prod(spec.shape)
    replicas = len(ladder) if kind == "replica-exchange" else 1
    if not info.spin:
        _check_initial_energy(x, model, ndim, spec)
    if kind == "langevin":
        s = samplers.Langevin(x, model, spec.temperature, eta, spec.seed, ndim, total_target)
    elif kind == "annealed-langevin":
        s = samplers.AnnealedLangevin(x, model, spec.temperature, spec.max_temperature or spec.temperature, eta,
                                      spec.steps, spec.seed, ndim, total=total_target)
    elif kind == "mala":
        s = samplers.Mala(x, model, spec.temperature, eta, spec.seed, ndim)
    elif kind == "replica-exchange":
        s = samplers.ReplicaExchange(x, model, ladder, eta, spec.seed, ndim, should_stop=should_stop)
    else:
        s = samplers.Gibbs(x, model, spec.temperature, spec.seed)
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
    if info.spin:
        energy = ising_energy(x, model)[0]  # type: ignore[arg-type]
    else:
        energy = phi4(x, model, ndim).energy  # type: ignore[arg-type]
    samples = x.cpu().numpy()
    grid_axes = tuple(range(1, samples.ndim))
    totals = samples.sum(grid_axes, dtype=np.float64)
    residual = np.abs(totals - total_target) if total_target is not None else np.zeros(count)
    work = sites * count * spec.steps * replicas
    if not (np.all(np.isfinite(samples)) and bool(torch.isfinite(energy).all())):
        raise _diverged(spec.steps - 1, eta, kind, work)
    kept = spec.steps - spec.burn_in
    rates = (accepted / kept).cpu().numpy() if isinstance(s, (samplers.Mala, samplers.ReplicaExchange)) else np.full(count, np.nan)
    return SampleOutput(
        samples=samples, energy=energy.cpu().numpy(), total=totals, constraint_residual=residual,
        acceptance_rate=rates, compute_seconds=seconds, site_updates=work,
        effective_sample_size=effective_sample_size(np.asarray(trace), should_stop, work),
    )


def tolerance_failures(spec: SampleSpec, out: SampleOutput) -> Sequence[str]:
    """Constraints a sample misses by more than their tolerance (never passed silently)."""
    failures = []
    for i, c in enumerate(spec.constraints):
        tol = c.tolerance or 1e-6 * max(1.0, abs(c.target))
        worst = float(out.constraint_residual.max())
        if worst > tol:
            failures.append(f"constraints[{i}] ({c.name} = {c.target}): residual {worst:.3g} > tolerance {tol:.3g}")
    return failures
