"""DiffusionService.Reconstruct: decode and check the observations, run `idf.engine.reconstruction.posterior`
on the worker pool, meter it, encode mean, standard deviation and (if asked) the samples."""

from __future__ import annotations

import asyncio
import math

import grpc
import numpy as np

from idf.client.fields import to_field
from idf.engine import models
from idf.engine.reconstruction import posterior as reconstruction
from idf.server.errors import invalid_argument, quote
from idf.server.rpc import unary
from idf.server.validation import decode_field
from idf.v1 import diffusion_pb2


def observations(
    request: diffusion_pb2.ReconstructRequest, max_elements: int
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """(shape, values, mask) from either form of the request, every rule checked with its field path."""
    shape = tuple(int(n) for n in request.shape)
    if not shape or any(n < 1 for n in shape) or math.prod(shape) > max_elements:
        raise invalid_argument(
            "shape", f"needs positive extents within {max_elements} sites, got {list(shape)}"
        )
    values = np.zeros(shape)
    mask = np.zeros(shape, dtype=bool)
    if request.observations and (request.HasField("observed") or request.HasField("mask")):
        raise invalid_argument("observations", "give observations or observed with mask, not both")
    if request.observations:
        for i, o in enumerate(request.observations):
            index = tuple(int(k) for k in o.index)
            if len(index) != len(shape) or any(not 0 <= k < n for k, n in zip(index, shape)):
                raise invalid_argument(
                    f"observations[{i}].index", f"{list(index)} is outside the grid {list(shape)}"
                )
            if not np.isfinite(o.value):
                raise invalid_argument(f"observations[{i}].value", "is NaN or Inf")
            if mask[index] and values[index] != o.value:
                raise invalid_argument(
                    f"observations[{i}].index",
                    f"site {list(index)} is observed twice with different values",
                )
            values[index], mask[index] = o.value, True
        return shape, values, mask
    if not (request.HasField("observed") and request.HasField("mask")):
        raise invalid_argument("observations", "give observations, or observed with mask")
    observed = decode_field(request.observed, "observed", max_elements=max_elements)
    m = decode_field(request.mask, "mask", max_elements=max_elements)
    for name, a in (("observed", observed), ("mask", m)):
        if a.shape != shape:
            raise invalid_argument(
                f"{name}.shape", f"{list(a.shape)} differs from shape {list(shape)}"
            )
    if m.dtype.kind not in "iub":
        raise invalid_argument("mask.dtype", f"must be an integer type, got {m.dtype}")
    mask = m != 0
    if not np.all(np.isfinite(observed[mask])):
        raise invalid_argument("observed", "contains NaN or Inf at observed sites")
    return shape, np.where(mask, observed, 0.0), mask


class Reconstructing:
    """Mixed into DiffusionServicer (needs EngineBacked's settings, executor, metering, device)."""

    @unary
    async def Reconstruct(
        self, request: diffusion_pb2.ReconstructRequest, context: grpc.aio.ServicerContext
    ) -> diffusion_pb2.ReconstructResponse:
        shape, values, mask = observations(request, self.settings.max_field_elements)
        name = request.model or models.DEFAULT_DENOISER
        if name not in models.denoisers():
            raise invalid_argument(
                "model", f"unknown denoiser {quote(name)}; available: {models.denoisers()}"
            )
        count = request.sample_count or reconstruction.DEFAULT_SAMPLES
        if not 1 <= count <= self.settings.max_sample_count:
            raise invalid_argument(
                "sample_count", f"must be in 1..{self.settings.max_sample_count}"
            )
        steps = reconstruction.DEFAULT_STEPS
        sites = math.prod(shape)
        # the answer: mean and stddev, plus the samples when asked (float32 arrays)
        self.check_answer(
            2 + (count if request.return_samples else 0),
            sites * 4,
            "sample_count",
            "float32 arrays",
        )
        cost = reconstruction.estimate(shape, count, steps)
        self.admission.check_cost(
            cost.work, cost.state_bytes, "sample_count"
        )  # before the model loads
        model = await asyncio.to_thread(models.load_denoiser, name, str(self.device))
        out, charged = await self.metered(
            context,
            cost,
            lambda r: r.evaluations * sites,
            reconstruction.reconstruct,
            model,
            values,
            mask,
            noise_std=request.noise_std,
            count=count,
            steps=steps,
            seed=request.seed,
            device=self.device,
            field="sample_count",
            rpc="Reconstruct",
            outputs=lambda r: [r.mean, r.stddev, *(r.samples if request.return_samples else ())],
        )
        response = diffusion_pb2.ReconstructResponse(
            mean=to_field(out.mean), stddev=to_field(out.stddev)
        )
        if request.return_samples:
            response.samples.extend(to_field(s) for s in out.samples)
        response.usage.site_updates = out.evaluations * sites
        response.usage.compute_seconds = out.compute_seconds
        response.usage.charged_ceu = charged
        return response
