"""`Sample` with the learned reverse-diffusion sampler: a shipped denoiser generates fields, the
energy model's gradient guides them (scale λ = `guidance_scale`, docs/diffusion.md), an exact
`total` constraint is enforced by projection, and every sample is measured under the energy model
like the Boltzmann samplers' samples are."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from idf.engine import models
from idf.engine.cost import Cost
from idf.engine.errors import ParameterError
from idf.engine.sampling import energy_models, reverse
from idf.engine.sampling.energy import EnergyModel
from idf.engine.sampling.spec import (
    MAX_FIELD_VALUE,
    Progress,
    SampleOutput,
    SampleSpec,
    check_constraint,
    check_temperature,
    total_target,
)

DEFAULT_STEPS = 32
MAX_GUIDANCE = 1e6


def check(spec: SampleSpec, info: EnergyModel) -> None:
    if info.spin:
        raise ParameterError(
            "sampler.kind",
            "reverse diffusion generates continuous fields; Ising samples with gibbs",
        )
    if "reverse-diffusion" not in info.samplers:
        raise ParameterError(
            "sampler.kind", f"{info.name} samples with {list(info.samplers)}, not reverse-diffusion"
        )
    name = spec.denoiser or models.DEFAULT_DENOISER
    if name not in models.denoisers():
        raise ParameterError(
            "sampler.model", f"unknown denoiser {name!r}; available: {models.denoisers()}"
        )
    if spec.steps < 1:
        raise ParameterError("sampler.steps", f"must be >= 1, got {spec.steps}")
    if spec.count < 1:
        raise ParameterError("sample_count", f"must be >= 1, got {spec.count}")
    if not (math.isfinite(spec.guidance_scale) and 0 <= spec.guidance_scale <= MAX_GUIDANCE):
        raise ParameterError(
            "sampler.guidance_scale",
            f"must be finite and in [0, {MAX_GUIDANCE:g}], got {spec.guidance_scale:.4g}",
        )
    check_temperature("sampler.temperature", spec.temperature)
    if spec.initial is not None:
        raise ParameterError("initial", "reverse diffusion starts from noise; leave initial unset")
    for i, c in enumerate(spec.constraints):
        check_constraint(i, c, math.prod(spec.shape))
    if spec.external_field is not None and spec.external_field.shape == spec.shape:
        f = spec.external_field
        if (
            f.dtype.kind not in "biuf"
            or not np.all(np.isfinite(f))
            or (f.size and float(np.max(np.abs(f))) > MAX_FIELD_VALUE)
        ):
            raise ParameterError(
                "energy_model.external_field",
                f"values must be finite with |value| <= {MAX_FIELD_VALUE:g}",
            )


def estimate(spec: SampleSpec) -> Cost:
    """The cost of `generate(spec)` before it runs (no checkpoint loaded): the shipped denoisers'
    side is the spec's shape when the spec is valid (`generate` refuses any other)."""
    info = energy_models.info(spec.model)
    energy_models.resolve_parameters(info, spec.parameters)
    check(spec, info)
    from idf.engine.reconstruction import posterior as reconstruction

    return reconstruction.estimate(tuple(spec.shape), spec.count, spec.steps)


def _blame(spec: SampleSpec) -> str:
    """The parameter a diverging generation is most likely due to."""
    if spec.guidance_scale > 0:
        return "sampler.guidance_scale"
    i = next((i for i, c in enumerate(spec.constraints) if c.name == "total"), None)
    return f"energy_model.constraints[{i}].target" if i is not None else "sampler.model"


def generate(
    spec: SampleSpec,
    *,
    progress: Callable[[Progress], None] = lambda p: None,
    should_stop: Callable[[], bool] = lambda: False,
    device: str | torch.device = "cpu",
) -> SampleOutput:
    info = energy_models.info(spec.model)
    params = energy_models.resolve_parameters(info, spec.parameters)
    check(spec, info)
    device = torch.device(device)
    denoiser = models.load_denoiser(spec.denoiser or models.DEFAULT_DENOISER, str(device))
    side = denoiser.side
    if tuple(spec.shape) != (side, side):
        raise ParameterError(
            "shape",
            f"denoiser {spec.denoiser or models.DEFAULT_DENOISER} generates {side}x{side} fields, "
            f"got {list(spec.shape)}",
        )
    if spec.external_field is not None and spec.external_field.shape != spec.shape:
        raise ParameterError(
            "energy_model.external_field",
            f"shape {spec.external_field.shape} differs from {list(spec.shape)}",
        )
    energy = energy_models.build(info, params, spec.external_field, torch.float32, device)
    total = total_target(spec)
    guidance = reverse.Guidance(
        energy=energy, energy_scale=spec.guidance_scale, temperature=spec.temperature, total=total
    )

    def report(i: int, n: int, sigma: float, x: torch.Tensor) -> None:
        progress(
            Progress(i, n, spec.temperature, float(energy.energy(x[:, 0], 2).mean()), float("nan"))
        )

    start = time.perf_counter()
    x, evaluations = reverse.sample(
        denoiser,
        spec.count,
        steps=spec.steps,
        method=reverse.STOCHASTIC,
        guidance=guidance,
        seed=spec.seed,
        device=device,
        progress=report,
        should_stop=should_stop,
        blame=_blame(spec),
    )
    seconds = time.perf_counter() - start
    x = x[:, 0]
    samples = x.cpu().numpy()
    totals = samples.sum((1, 2), dtype=np.float64)
    return SampleOutput(
        samples=samples.astype(np.float64 if spec.dtype == "float64" else np.float32),
        energy=energy.energy(x, 2).cpu().numpy(),
        total=totals,
        constraint_residual=np.abs(totals - total) if total is not None else np.zeros(spec.count),
        acceptance_rate=np.full(spec.count, np.nan),
        effective_sample_size=float(spec.count),  # independent draws: one per sample
        site_updates=evaluations * side * side,
        compute_seconds=seconds,
    )
