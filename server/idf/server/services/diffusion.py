"""DiffusionService: the model catalogue, the energy-model registry, Boltzmann sampling, learned
reverse diffusion (Sample) and reconstruction from sparse observations (Reconstruct)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import grpc
import numpy as np

from idf.client.fields import to_field
from idf.engine import models
from idf.engine.errors import ParameterError
from idf.engine.sampling import boltzmann as sampling
from idf.engine.sampling import energy_models
from idf.engine.sampling import reverse_diffusion as generation
from idf.server import paging
from idf.server.errors import ApiError, invalid_argument
from idf.server.rpc import streaming, unary
from idf.server.services.engine_backed import EngineBacked
from idf.server.services.reconstruct import Reconstructing
from idf.server.validation import decode_field, require_finite
from idf.v1 import diffusion_pb2, diffusion_pb2_grpc, field_pb2

_TASKS = {
    "forecast": diffusion_pb2.MODEL_TASK_FORECAST,
    "denoise": diffusion_pb2.MODEL_TASK_DENOISE,
    "regime": diffusion_pb2.MODEL_TASK_REGIME,
}
_KINDS = {
    diffusion_pb2.SAMPLER_KIND_UNSPECIFIED: "",
    diffusion_pb2.SAMPLER_KIND_LANGEVIN: "langevin",
    diffusion_pb2.SAMPLER_KIND_MALA: "mala",
    diffusion_pb2.SAMPLER_KIND_ANNEALED_LANGEVIN: "annealed-langevin",
    diffusion_pb2.SAMPLER_KIND_REPLICA_EXCHANGE: "replica-exchange",
    diffusion_pb2.SAMPLER_KIND_GIBBS: "gibbs",
    diffusion_pb2.SAMPLER_KIND_REVERSE_DIFFUSION: "reverse-diffusion",
}
_KIND_CODES = {v: k for k, v in _KINDS.items() if v}


class DiffusionServicer(Reconstructing, EngineBacked, diffusion_pb2_grpc.DiffusionServiceServicer):
    @unary
    async def ListModels(
        self, request: diffusion_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> diffusion_pb2.ListModelsResponse:
        size = paging.page_size(request.page_size)
        catalogue = sorted(models.CATALOGUE, key=lambda m: m.name)
        start = 0
        if request.page_token:
            # the token holds the last name of the previous page: stable under catalogue growth
            after = paging.decode_str(request.page_token, "after")
            start = next((i for i, m in enumerate(catalogue) if m.name > after), len(catalogue))
        page = catalogue[start : start + size]
        more = start + size < len(catalogue)
        return diffusion_pb2.ListModelsResponse(
            models=[
                diffusion_pb2.Model(
                    name=m.name,
                    task=_TASKS[m.task],
                    description=m.description,
                    version=m.version,
                    learned=m.learned,
                    history_frames=m.history_frames,
                )
                for m in page
            ],
            next_page_token=paging.encode("after", page[-1].name) if more and page else "",
        )

    @unary
    async def ListEnergyModels(
        self, request: diffusion_pb2.ListEnergyModelsRequest, context: grpc.aio.ServicerContext
    ) -> diffusion_pb2.ListEnergyModelsResponse:
        out = diffusion_pb2.ListEnergyModelsResponse()
        for m in sorted(energy_models.REGISTRY.values(), key=lambda m: m.name):
            out.energy_models.add(
                name=m.name,
                description=m.description,
                accepts_external_field=m.accepts_external_field,
                constraints=list(m.constraints),
                samplers=[_KIND_CODES[s] for s in m.samplers],
                parameters=[
                    diffusion_pb2.ParameterSpec(
                        name=p.name,
                        description=p.description,
                        default_value=p.default,
                        minimum=p.minimum,
                        maximum=p.maximum,
                    )
                    for p in m.parameters
                ],
            )
        return out

    def _spec(self, request: diffusion_pb2.SampleRequest) -> sampling.SampleSpec:
        em, sp = request.energy_model, request.sampler
        if not em.name:
            raise invalid_argument("energy_model.name", "is required (see ListEnergyModels)")
        if sp.kind not in _KINDS:
            raise invalid_argument("sampler.kind", f"unknown sampler enum value {sp.kind}")
        shape = tuple(int(n) for n in request.shape)
        limit = self.settings.max_field_elements
        if any(n < 1 for n in shape) or not shape:
            raise invalid_argument("shape", f"needs 1 to 3 positive extents, got {list(shape)}")
        if math.prod(shape) > limit:
            raise invalid_argument("shape", f"{math.prod(shape)} sites exceed the limit {limit}")
        reverse = sp.kind == diffusion_pb2.SAMPLER_KIND_REVERSE_DIFFUSION
        steps = sp.steps or (generation.DEFAULT_STEPS if reverse else 1000)
        if steps > self.settings.max_sample_steps:
            raise invalid_argument(
                "sampler.steps", f"{steps} exceeds the maximum {self.settings.max_sample_steps}"
            )
        count = request.sample_count or 1
        if not 1 <= count <= self.settings.max_sample_count:
            raise invalid_argument(
                "sample_count", f"must be in 1..{self.settings.max_sample_count}"
            )
        external = initial = None
        if em.HasField("external_field"):
            external = decode_field(
                em.external_field, "energy_model.external_field", max_elements=limit
            )
            require_finite(external, "energy_model.external_field")
        if request.HasField("initial"):
            initial = decode_field(request.initial, "initial", max_elements=limit)
            require_finite(initial, "initial")
        _check_numbers(request)
        dtype = {field_pb2.DTYPE_FLOAT64: "float64", field_pb2.DTYPE_FLOAT32: "float32"}.get(
            request.dtype, ""
        )
        temperature = (
            sp.temperature or 1.0
        )  # 0 (unset) means 1; negative values are refused by the engine
        return sampling.SampleSpec(
            model=em.name,
            parameters=dict(em.parameters),
            shape=shape,
            sampler=_KINDS[sp.kind],
            temperature=temperature,
            step_size=sp.step_size,
            steps=steps,
            burn_in=sp.burn_in,
            max_temperature=sp.max_temperature,
            temperatures=tuple(sp.temperatures),
            count=count,
            seed=request.seed,
            external_field=external,
            initial=initial,
            dtype=dtype,
            constraints=tuple(
                sampling.Constraint(c.name, c.target, c.tolerance, c.weight) for c in em.constraints
            ),
            denoiser=sp.model,
            guidance_scale=sp.guidance_scale,
        )

    @streaming
    async def Sample(
        self, request: diffusion_pb2.SampleRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[diffusion_pb2.SampleResponse]:
        spec = self._spec(request)
        try:
            cost = sampling.estimate(spec)
            itemsize = sampling.itemsize(spec)
        except ParameterError as e:
            raise invalid_argument(e.parameter, e.reason) from None
        n = math.prod(spec.shape)
        self.check_answer(spec.count, n * itemsize, "sample_count", "samples")
        queue: asyncio.Queue[sampling.Progress] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            self.metered(
                context,
                cost,
                lambda o: o.site_updates,
                sampling.sample,
                spec,
                device=self.device,
                progress=lambda p: loop.call_soon_threadsafe(queue.put_nowait, p),
                field="sampler.steps",
                outputs=lambda o: list(o.samples[: spec.count]),
                rpc="Sample",
            )
        )
        getter: asyncio.Future | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield _progress(getter.result())
                    continue
                getter.cancel()
                break
            while not queue.empty():
                yield _progress(queue.get_nowait())
            out, charged = task.result()
        except BaseException:
            task.cancel()
            if getter is not None and not getter.done():
                getter.cancel()
            raise
        failures = sampling.tolerance_failures(spec, out)
        if failures:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "; ".join(failures),
                reason="CONSTRAINT_VIOLATED",
                violations=[(f.split(" ")[0], f) for f in failures],
            )
        result = diffusion_pb2.SampleResult(effective_sample_size=out.effective_sample_size)
        result.usage.site_updates = out.site_updates
        result.usage.compute_seconds = out.compute_seconds
        result.usage.charged_ceu = charged
        for i in range(spec.count):
            g = result.samples.add(field=to_field(out.samples[i]))
            g.diagnostics.energy = float(out.energy[i])
            g.diagnostics.energy_per_site = float(out.energy[i]) / n
            g.diagnostics.total = float(out.total[i])
            g.diagnostics.constraint_residual = float(out.constraint_residual[i])
            g.diagnostics.acceptance_rate = float(out.acceptance_rate[i])
        yield diffusion_pb2.SampleResponse(result=result)


MAX_TEMPERATURE = (
    1e6  # temperatures in units of the model's energy scale; far past any physical use
)
MAX_STEP_SIZE = 1e3


def _check_numbers(request: diffusion_pb2.SampleRequest) -> None:
    """Every float the caller controls is finite and within its documented range (main: NaN
    temperatures and 1e300 step sizes reached the engine and came back INTERNAL or as NaN)."""
    sp, em = request.sampler, request.energy_model
    checks = [
        ("sampler.temperature", sp.temperature, 0.0, MAX_TEMPERATURE),
        ("sampler.max_temperature", sp.max_temperature, 0.0, MAX_TEMPERATURE),
        ("sampler.step_size", sp.step_size, 0.0, MAX_STEP_SIZE),
        ("sampler.guidance_scale", sp.guidance_scale, 0.0, 1e6),
    ]
    checks += [
        (f"sampler.temperatures[{i}]", t, 1e-12, MAX_TEMPERATURE)
        for i, t in enumerate(sp.temperatures)
    ]
    for i, c in enumerate(em.constraints):
        checks += [
            (f"energy_model.constraints[{i}].target", c.target, -1e300, 1e300),
            (f"energy_model.constraints[{i}].tolerance", c.tolerance, 0.0, 1e300),
        ]
    checks += [
        (f"energy_model.parameters[{k[:32]!r}]", v, -1e300, 1e300) for k, v in em.parameters.items()
    ]
    for path, value, low, high in checks:
        if not (np.isfinite(value) and low <= value <= high):
            raise invalid_argument(
                path,
                f"must be finite and in [{low:g}, {high:g}], got {value}",
                reason="NON_FINITE" if not np.isfinite(value) else "INVALID_FIELD",
            )
    if sp.burn_in < 0:
        raise invalid_argument("sampler.burn_in", f"must be >= 0, got {sp.burn_in}")


def _progress(p: sampling.Progress) -> diffusion_pb2.SampleResponse:
    return diffusion_pb2.SampleResponse(
        progress=diffusion_pb2.SampleProgress(
            step=p.step,
            total_steps=p.total_steps,
            temperature=p.temperature,
            mean_energy=p.mean_energy,
            acceptance_rate=p.acceptance_rate,
        )
    )
