"""What the sync and async clients share: channel options, request builders, response decoders.

Both twins build the same requests and decode the same responses, so they cannot drift apart.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc
import numpy as np
from google.protobuf import timestamp_pb2

from idf.client.fields import from_field, to_field
from idf.v1 import diffusion_pb2, field_pb2, market_pb2, predict_pb2, proof_pb2, telemetry_pb2

DEFAULT_PORT = 50051
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SERVICES = (
    "idf.v1.PredictService",
    "idf.v1.DiffusionService",
    "idf.v1.ProofService",
    "idf.v1.MarketService",
    "idf.v1.TelemetryService",
)


def default_target() -> str:
    """`IDF_SERVER` when set, else localhost on the default port."""
    return os.environ.get("IDF_SERVER") or f"localhost:{DEFAULT_PORT}"


def channel_options(max_message_bytes: int, max_attempts: int) -> list[tuple[str, object]]:
    """Message-size limits, plus gRPC's own retry policy: only UNAVAILABLE is retried, with
    exponential backoff. Retries are done by grpc-core (transparently, before any response
    message arrived), so streaming calls are never replayed after they produced output."""
    config: dict[str, object] = {"methodConfig": [{"name": [{"service": s} for s in SERVICES]}]}
    if max_attempts > 1:
        config["methodConfig"][0]["retryPolicy"] = {  # type: ignore[index]
            "maxAttempts": max_attempts,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1 if max_attempts > 1 else 0),
        ("grpc.service_config", json.dumps(config)),
    ]


def combined_credentials(
    credentials: grpc.ChannelCredentials | None,
    call_credentials: grpc.CallCredentials | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials, composed with per-call credentials when both are given."""
    if call_credentials is not None and credentials is None:
        raise ValueError("call_credentials need a secure channel: pass credentials as well")
    if call_credentials is not None:
        return grpc.composite_channel_credentials(credentials, call_credentials)
    return credentials


@dataclass(frozen=True)
class Usage:
    """Measured work of one call."""

    site_updates: int
    compute_seconds: float
    charged_ceu: int


@dataclass(frozen=True)
class Forecast:
    """The result of `predict`: `frames` has shape (steps, *field_shape)."""

    frames: np.ndarray
    stddev: np.ndarray | None
    frame_interval: float
    model: str
    totals: np.ndarray
    cfl: float
    usage: Usage


def _frames(history: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(history, np.ndarray):
        return [history]
    frames = [np.asarray(h) for h in history]
    if not frames:
        raise ValueError("history needs at least one frame")
    return frames


def predict_request(
    history: np.ndarray | Sequence[np.ndarray],
    steps: int,
    *,
    model: str = "",
    diffusivity: float = 0.0,
    velocity: Sequence[float] | None = None,
    dt: float = 0.0,
    substeps: int = 1,
    source: np.ndarray | None = None,
    spacing: Sequence[float] | None = None,
    boundary: str = "periodic",
    boundary_value: float = 0.0,
    units: str = "",
    reynolds: float | None = None,
    ensemble_members: int = 0,
    seed: int = 0,
) -> predict_pb2.PredictRequest:
    """Build a PredictRequest. `history` is one frame or a sequence of frames (oldest first).
    `reynolds`, `ensemble_members` and `seed` are for learned flow forecasters
    ("nvp-kolmogorov-64"); the transport parameters are for the physics forecaster."""
    transport = predict_pb2.TransportParameters(
        diffusivity=diffusivity, velocity=list(velocity or ()), dt=dt, substeps=substeps
    )
    if source is not None:
        transport.source.CopyFrom(to_field(source, spacing=spacing))
    return predict_pb2.PredictRequest(
        history=[
            to_field(
                f, spacing=spacing, boundary=boundary, boundary_value=boundary_value, units=units
            )
            for f in _frames(history)
        ],
        steps=steps,
        model=model,
        transport=transport,
        flow=None if reynolds is None else predict_pb2.FlowParameters(reynolds=reynolds),
        ensemble_members=ensemble_members,
        seed=seed,
    )


def usage_from(usage: field_pb2.Usage) -> Usage:
    return Usage(usage.site_updates, usage.compute_seconds, usage.charged_ceu)


def forecast_from(response: predict_pb2.PredictResponse) -> Forecast:
    frames = np.stack([from_field(f) for f in response.frames])
    stddev = np.stack([from_field(f) for f in response.stddev]) if response.stddev else None
    return Forecast(
        frames=frames,
        stddev=stddev,
        frame_interval=response.frame_interval,
        model=response.model,
        totals=np.asarray(response.totals, dtype=np.float64),
        cfl=response.cfl,
        usage=usage_from(response.usage),
    )


def create_proof_request(
    *,
    prediction: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    sequence: Sequence[np.ndarray] | None = None,
    policy: str = "",
    producer: tuple[str, str] = ("", ""),
    request_id: str = "",
) -> proof_pb2.CreateProofRequest:
    """Prediction versus reference, or a time sequence, under a policy."""
    request = proof_pb2.CreateProofRequest(
        policy=policy,
        producer=proof_pb2.Producer(name=producer[0], version=producer[1]),
        request_id=request_id,
    )
    if prediction is not None:
        request.prediction.CopyFrom(to_field(prediction))
    if reference is not None:
        request.reference.CopyFrom(to_field(reference))
    for frame in sequence or ():
        request.sequence.append(to_field(frame))
    return request


def detect_regime_request(
    frames: Sequence[np.ndarray], frame_interval: float, model: str = ""
) -> predict_pb2.DetectRegimeRequest:
    """A window of 2-D vorticity frames (oldest first), `frame_interval` time units apart."""
    return predict_pb2.DetectRegimeRequest(
        frames=[to_field(np.ascontiguousarray(f)) for f in frames],
        frame_interval=frame_interval,
        model=model,
    )


# --- the market: accounts by id or resource name, tokens by name, amounts in base units ----------

DEFAULT_POOL = "market/pools/ceu-pft"
TOKENS: dict[str, market_pb2.Token] = {"CEU": market_pb2.TOKEN_CEU, "PFT": market_pb2.TOKEN_PFT}


def account_name(account: str) -> str:
    """ "alice" or "market/accounts/alice" -> "market/accounts/alice"."""
    return account if account.startswith("market/accounts/") else f"market/accounts/{account}"


def token(name: str) -> market_pb2.Token:
    if name.upper() not in TOKENS:
        raise ValueError(f"token must be CEU or PFT, got {name!r}")
    return TOKENS[name.upper()]


def deadline_in(seconds: float) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromNanoseconds(time.time_ns() + int(seconds * 1e9))
    return t


def _exactly_one(amount_in: int | None, amount_out: int | None) -> None:
    if (amount_in is None) == (amount_out is None):
        raise ValueError("give exactly one of amount_in and amount_out")


def quote_request(
    token_in: str,
    *,
    amount_in: int | None = None,
    amount_out: int | None = None,
    pool: str = DEFAULT_POOL,
) -> market_pb2.QuoteRequest:
    _exactly_one(amount_in, amount_out)
    request = market_pb2.QuoteRequest(pool=pool, token_in=token(token_in))
    if amount_in is not None:
        request.amount_in = amount_in
    else:
        request.amount_out = amount_out  # type: ignore[assignment]
    return request


def swap_request(
    account: str,
    token_in: str,
    *,
    amount_in: int | None = None,
    amount_out: int | None = None,
    min_amount_out: int = 0,
    max_amount_in: int = 0,
    deadline_s: float = 60.0,
    request_id: str = "",
    pool: str = DEFAULT_POOL,
) -> market_pb2.SwapRequest:
    """A swap, exact in (with `min_amount_out`) or exact out (with `max_amount_in`); refused by
    the server after `deadline_s` seconds. `request_id` is the idempotency key (default: a new
    random one; pass your own to retry safely)."""
    _exactly_one(amount_in, amount_out)
    request = market_pb2.SwapRequest(
        pool=pool,
        account=account_name(account),
        token_in=token(token_in),
        min_amount_out=min_amount_out,
        max_amount_in=max_amount_in,
        deadline=deadline_in(deadline_s),
        request_id=request_id or uuid.uuid4().hex,
    )
    if amount_in is not None:
        request.amount_in = amount_in
    else:
        request.amount_out = amount_out  # type: ignore[assignment]
    return request


def add_liquidity_request(
    account: str,
    amount_ceu: int,
    amount_pft: int,
    *,
    amount_ceu_min: int = 0,
    amount_pft_min: int = 0,
    deadline_s: float = 60.0,
    request_id: str = "",
    pool: str = DEFAULT_POOL,
) -> market_pb2.AddLiquidityRequest:
    return market_pb2.AddLiquidityRequest(
        pool=pool,
        account=account_name(account),
        amount_ceu_desired=amount_ceu,
        amount_pft_desired=amount_pft,
        amount_ceu_min=amount_ceu_min,
        amount_pft_min=amount_pft_min,
        deadline=deadline_in(deadline_s),
        request_id=request_id or uuid.uuid4().hex,
    )


def remove_liquidity_request(
    account: str,
    shares: int,
    *,
    amount_ceu_min: int = 0,
    amount_pft_min: int = 0,
    deadline_s: float = 60.0,
    request_id: str = "",
    pool: str = DEFAULT_POOL,
) -> market_pb2.RemoveLiquidityRequest:
    return market_pb2.RemoveLiquidityRequest(
        pool=pool,
        account=account_name(account),
        shares=shares,
        amount_ceu_min=amount_ceu_min,
        amount_pft_min=amount_pft_min,
        deadline=deadline_in(deadline_s),
        request_id=request_id or uuid.uuid4().hex,
    )


def mint_request(
    account: str, token_name: str, amount: int, *, request_id: str = ""
) -> market_pb2.MintRequest:
    return market_pb2.MintRequest(
        account=account_name(account),
        amount=market_pb2.TokenAmount(token=token(token_name), amount=amount),
        request_id=request_id or uuid.uuid4().hex,
    )


QUALITIES = {
    "good": telemetry_pb2.READING_QUALITY_GOOD,
    "uncertain": telemetry_pb2.READING_QUALITY_UNCERTAIN,
    "bad": telemetry_pb2.READING_QUALITY_BAD,
}


@dataclass(frozen=True)
class Reading:
    """One sensor reading for `publish`. `measured`: seconds since the epoch (None: on receipt);
    `reading_id`: the idempotent id that makes a retried publish count once."""

    site: str  # "sites/{site_id}"
    sensor: str
    index: Sequence[int]
    value: float
    measured: float | None = None
    unit: str = ""
    quality: str = "good"  # good, uncertain, bad
    reading_id: str = ""


def reading_message(
    r: Reading | tuple[str, str, Sequence[int], float],
) -> telemetry_pb2.SensorReading:
    if not isinstance(r, Reading):
        r = Reading(*r)
    if r.quality not in QUALITIES:
        raise ValueError(f"quality must be one of {sorted(QUALITIES)}, got {r.quality!r}")
    out = telemetry_pb2.SensorReading(
        site=r.site, sensor=r.sensor, index=[int(i) for i in r.index], value=float(r.value),
        unit=r.unit, quality=QUALITIES[r.quality], reading_id=r.reading_id,
    )  # fmt: skip
    if r.measured is not None:
        out.measure_time.FromNanoseconds(round(r.measured * 1e9))
    return out


PUBLISH_BATCH = 1000  # readings per stream message


def publish_requests(
    readings: Iterable[Reading | tuple[str, str, Sequence[int], float]],
    batch: int = PUBLISH_BATCH,
) -> Iterator[telemetry_pb2.PublishRequest]:
    """Readings (Reading, or (site, sensor, grid index, value)) as stream messages of `batch`."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    chunk: list[telemetry_pb2.SensorReading] = []
    for r in readings:
        chunk.append(reading_message(r))
        if len(chunk) == batch:
            yield telemetry_pb2.PublishRequest(readings=chunk)
            chunk = []
    if chunk:
        yield telemetry_pb2.PublishRequest(readings=chunk)


SAMPLER_KINDS = {
    "": diffusion_pb2.SAMPLER_KIND_UNSPECIFIED,
    "langevin": diffusion_pb2.SAMPLER_KIND_LANGEVIN,
    "mala": diffusion_pb2.SAMPLER_KIND_MALA,
    "annealed-langevin": diffusion_pb2.SAMPLER_KIND_ANNEALED_LANGEVIN,
    "replica-exchange": diffusion_pb2.SAMPLER_KIND_REPLICA_EXCHANGE,
    "gibbs": diffusion_pb2.SAMPLER_KIND_GIBBS,
    "reverse-diffusion": diffusion_pb2.SAMPLER_KIND_REVERSE_DIFFUSION,
}
_DTYPES = {
    "": field_pb2.DTYPE_UNSPECIFIED,
    "float32": field_pb2.DTYPE_FLOAT32,
    "float64": field_pb2.DTYPE_FLOAT64,
}


def sample_request(
    model: str,
    shape: Sequence[int],
    *,
    parameters: dict[str, float] | None = None,
    sampler: str = "",
    temperature: float = 0.0,
    steps: int = 0,
    burn_in: int = 0,
    step_size: float = 0.0,
    max_temperature: float = 0.0,
    temperatures: Sequence[float] = (),
    count: int = 1,
    seed: int = 0,
    external_field: np.ndarray | None = None,
    initial: np.ndarray | None = None,
    constraints: Sequence[tuple[str, float, float]] = (),
    dtype: str = "",
    denoiser: str = "",
    guidance_scale: float = 0.0,
) -> diffusion_pb2.SampleRequest:
    """A SampleRequest of energy model `model` on a lattice of `shape`. `sampler` is a sampler's
    name ("mala", "gibbs", "reverse-diffusion", ...; "" lets the model choose), `constraints` are
    exact constraints (name, target, tolerance), `dtype` "float32" (default) or "float64"; zeros
    mean the server's defaults (ListEnergyModels lists each model's parameters and samplers)."""
    if sampler not in SAMPLER_KINDS:
        raise ValueError(
            f"sampler must be one of {sorted(k for k in SAMPLER_KINDS if k)}, got {sampler!r}"
        )
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    request = diffusion_pb2.SampleRequest(
        energy_model=diffusion_pb2.EnergyModelSpec(
            name=model,
            parameters=dict(parameters or {}),
            constraints=[
                diffusion_pb2.Constraint(name=n, target=t, tolerance=tol)
                for n, t, tol in constraints
            ],
        ),
        shape=[int(n) for n in shape],
        sample_count=count,
        seed=seed,
        dtype=_DTYPES[dtype],
        sampler=diffusion_pb2.SamplerSpec(
            kind=SAMPLER_KINDS[sampler],
            temperature=temperature,
            steps=steps,
            burn_in=burn_in,
            step_size=step_size,
            max_temperature=max_temperature,
            temperatures=list(temperatures),
            model=denoiser,
            guidance_scale=guidance_scale,
        ),
    )
    if external_field is not None:
        request.energy_model.external_field.CopyFrom(to_field(external_field))
    if initial is not None:
        request.initial.CopyFrom(to_field(initial))
    return request
