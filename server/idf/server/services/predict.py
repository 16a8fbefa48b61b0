"""PredictService: thin servicer over the forecasters of `idf.engine.forecast.registry` (decode,
look the forecaster up, check, estimate, run metered, encode) and the regime detector."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np

from idf.client.fields import BOUNDARY_NAMES, field_meta, to_field
from idf.engine import models
from idf.engine.errors import ParameterError
from idf.engine.forecast import registry
from idf.engine.forecast.base import Forecast, ForecastRequest
from idf.engine.forecast.physics import PHYSICS_MODEL
from idf.engine.regimes import detector as regime_detector
from idf.engine.regimes import features as regimes
from idf.server.errors import invalid_argument, quote
from idf.server.rpc import unary
from idf.server.services.engine_backed import EngineBacked
from idf.server.validation import decode_field, require_finite
from idf.v1 import field_pb2, predict_pb2, predict_pb2_grpc

# engine parameter name -> request field path
_PARAMETER_PATHS = {
    "diffusivity": "transport.diffusivity",
    "velocity": "transport.velocity",
    "dt": "transport.dt",
    "substeps": "transport.substeps",
    "source": "transport.source",
    "spacing": "history[0].spacing",
    "shape": "history[0].shape",
    "dtype": "history[0].dtype",
    "boundary": "history[0].boundary",
    "boundary_value": "history[0].boundary_value",
    "steps": "steps",
    "history": "history",
    "reynolds": "flow.reynolds",
    "ensemble_members": "ensemble_members",
}


class PredictServicer(EngineBacked, predict_pb2_grpc.PredictServiceServicer):
    @unary
    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        name = request.model or PHYSICS_MODEL
        if name not in registry.names():
            raise invalid_argument(
                "model", f"unknown forecaster {quote(name)}; available: {registry.names()}"
            )
        forecaster = registry.get(name)
        history = self._history(request, frames_per_step=forecaster.outputs_per_step)
        decoded = self._decode(request, history)
        try:
            forecaster.check(decoded)
        except ParameterError as e:
            raise invalid_argument(
                _PARAMETER_PATHS.get(e.parameter, e.parameter), e.reason
            ) from None
        cost = forecaster.estimate(decoded)
        result, charged = await self.metered(
            context,
            cost,
            lambda r: r.site_updates,
            forecaster.run,
            decoded,
            device=self.device,
            paths=_PARAMETER_PATHS,
            field="transport.substeps" if decoded.substeps > 1 else "steps",
            outputs=_outputs,
            rpc="Predict",
        )
        return _response(request, name, result, charged)

    def _history(
        self, request: predict_pb2.PredictRequest, frames_per_step: int
    ) -> list[np.ndarray]:
        """The decoded history frames, checked; `frames_per_step` frames of the present's size come
        back per forecast step (for the response-size limit)."""
        if not request.history:
            raise invalid_argument("history", "needs at least one frame")
        if request.steps < 1:
            raise invalid_argument("steps", f"must be >= 1, got {request.steps}")
        if request.steps > self.settings.max_predict_steps:
            raise invalid_argument(
                "steps", f"{request.steps} exceeds the maximum {self.settings.max_predict_steps}"
            )
        limit = self.settings.max_field_elements
        history = []
        first = request.history[0]
        for i, frame in enumerate(request.history):
            path = f"history[{i}]"
            array = decode_field(frame, path, max_elements=limit)
            require_finite(array, path)
            if i and _layout(frame) != _layout(first):
                raise invalid_argument(
                    path,
                    "every frame must share shape, dtype, spacing and boundary with history[0]",
                )
            history.append(array)
        if first.dtype not in (field_pb2.DTYPE_FLOAT32, field_pb2.DTYPE_FLOAT64):
            raise invalid_argument(
                "history[0].dtype", "Predict takes DTYPE_FLOAT32 or DTYPE_FLOAT64 fields"
            )
        if first.boundary and first.boundary not in BOUNDARY_NAMES:
            raise invalid_argument("history[0].boundary", "unknown boundary condition")
        self.check_answer(request.steps, history[-1].nbytes * frames_per_step, "steps", "frames")
        return history

    def _decode(
        self, request: predict_pb2.PredictRequest, history: list[np.ndarray]
    ) -> ForecastRequest:
        meta = field_meta(request.history[0])
        t = request.transport
        source = None
        if t.HasField("source"):
            source = decode_field(
                t.source, "transport.source", max_elements=self.settings.max_field_elements
            )
            require_finite(source, "transport.source")
        return ForecastRequest(
            history=history,
            steps=request.steps,
            spacing=tuple(meta.spacing),
            boundary=meta.boundary,
            boundary_value=meta.boundary_value,
            diffusivity=t.diffusivity,
            velocity=tuple(t.velocity),
            dt=t.dt,
            substeps=t.substeps or 1,
            source=source,
            reynolds=request.flow.reynolds if request.HasField("flow") else None,
            members=request.ensemble_members,
            seed=request.seed,
        )

    @unary
    async def DetectRegime(
        self, request: predict_pb2.DetectRegimeRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.DetectRegimeResponse:
        frames, interval = _regime_window(request, self.settings.max_field_elements)
        name = request.model or models.DEFAULT_DETECTOR
        if name not in models.detectors():
            raise invalid_argument(
                "model", f"unknown regime detector {quote(name)}; available: {models.detectors()}"
            )
        detector = await asyncio.to_thread(models.load_detector, name)
        resampled = (
            len(frames) * regimes.FEATURE_SIDE**2
        )  # features work on every frame resampled to 32^2
        cost = (resampled, resampled * REGIME_BYTES_PER_RESAMPLED_SITE + frames.size * 16)
        label, probabilities, features, needed = await self.light(
            context, cost, "frames", regime_detector.decide, detector, frames, interval
        )
        response = predict_pb2.DetectRegimeResponse(
            regime=_REGIMES[label],
            frames_needed=min(needed, 2**31 - 1),
            model=name,
            features=features,
        )
        for regime, p in probabilities.items():
            response.probabilities.add(regime=_REGIMES[regime], probability=p)
        return response


def _outputs(result: Forecast) -> list[np.ndarray]:
    return [*result.frames, *(result.stddev if result.stddev is not None else ())]


def _response(
    request: predict_pb2.PredictRequest, model: str, result: Forecast, charged: int
) -> predict_pb2.PredictResponse:
    meta = field_meta(request.history[0])

    def field(a: np.ndarray) -> field_pb2.Field:
        return to_field(
            a,
            spacing=meta.spacing,
            boundary=meta.boundary,
            boundary_value=meta.boundary_value,
            units=meta.units,
        )

    stddev = result.stddev if result.stddev is not None else ()
    return predict_pb2.PredictResponse(
        frames=[field(f) for f in result.frames],
        stddev=[field(s) for s in stddev],
        frame_interval=result.frame_interval,
        model=model,
        totals=result.totals.tolist(),
        cfl=result.cfl,
        usage=field_pb2.Usage(
            site_updates=result.site_updates,
            compute_seconds=result.compute_seconds,
            charged_ceu=charged,
        ),
    )


def _layout(field: field_pb2.Field) -> tuple:
    return (
        tuple(field.shape),
        field.dtype,
        tuple(field.spacing),
        field.boundary,
        field.boundary_value,
    )


_REGIMES = {
    "undetermined": predict_pb2.REGIME_UNDETERMINED,
    "steady": predict_pb2.REGIME_STEADY,
    "periodic": predict_pb2.REGIME_PERIODIC,
    "chaotic": predict_pb2.REGIME_CHAOTIC,
}


MAX_REGIME_FRAMES = 1024  # a decision needs tens of frames; a window of 1024 is long past any use
# peak bytes per resampled site of the feature extraction (complex spectra, float64 copies): 60,000
# frames of 8x8 peaked at 3.35 GB in a probe, i.e. ~55 bytes per resampled 32^2 site; rounded up
REGIME_BYTES_PER_RESAMPLED_SITE = 64
MIN_INTERVAL = (
    1e-3  # time units: finer sampling adds nothing the features use, and frames_needed stays small
)


def _regime_window(
    request: predict_pb2.DetectRegimeRequest, limit: int
) -> tuple[np.ndarray, float]:
    """Frames (T, n, m) as float64 and the interval, with every rule checked by field path."""
    if len(request.frames) > MAX_REGIME_FRAMES:
        raise invalid_argument(
            "frames", f"at most {MAX_REGIME_FRAMES} frames per window, got {len(request.frames)}"
        )
    if len(request.frames) < 2:
        raise invalid_argument(
            "frames",
            f"needs at least 2 frames (a decision needs {regimes.MIN_FRAMES}+), got {len(request.frames)}",
        )
    interval = request.frame_interval
    if not (np.isfinite(interval) and MIN_INTERVAL <= interval <= regimes.MAX_INTERVAL):
        raise invalid_argument(
            "frame_interval",
            f"must be in [{MIN_INTERVAL:g}, {regimes.MAX_INTERVAL}] time units, got {interval}",
        )
    out = []
    for i, frame in enumerate(request.frames):
        a = decode_field(frame, f"frames[{i}]", max_elements=limit)
        require_finite(a, f"frames[{i}]")
        if a.ndim != 2 or min(a.shape) < 8:
            raise invalid_argument(
                f"frames[{i}].shape",
                f"frames are 2-D vorticity fields of at least 8x8, got {list(a.shape)}",
            )
        if out and a.shape != out[0].shape:
            raise invalid_argument(
                f"frames[{i}].shape", f"{list(a.shape)} differs from frames[0] {list(out[0].shape)}"
            )
        out.append(a.astype(np.float64))
    if len(out) * out[0].size > limit * 4:
        raise invalid_argument(
            "frames", f"the window holds {len(out) * out[0].size} values; at most {limit * 4}"
        )
    return np.stack(out), float(interval)
