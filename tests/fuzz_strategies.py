"""Property-based fuzzing of every RPC of proto/idf/v1 on both faces (gRPC and REST/JSON).

Strategies are generated from the message descriptors (nothing is listed per RPC except a few
valid seed requests that let mutants reach deep code): scalars with boundary values (0, -1,
huge integers, NaN, +-inf, 1e308, long and unicode strings), enums with unknown numbers,
repeated fields with sizes, nested messages, `Field` tensors that are sometimes well-formed small
arrays and sometimes malformed (shape/dtype/byte length disagree, huge declared shapes), raw
random bytes on gRPC, random or mutated JSON and random bytes on REST.

The oracle (`Harness.send`): no gRPC status INTERNAL / UNKNOWN / DATA_LOSS / DEADLINE_EXCEEDED
(the server must refuse expensive work fast, not run it into the deadline) / UNAVAILABLE, no HTTP
5xx except 504 when the case itself asked for a deadline shorter than the
harness's, every REST error body a `google.rpc.Status` with an
`ErrorInfo` reason, NDJSON error lines likewise; the server process alive and SERVING; its RSS
back within 10% of the post-warm-up value at the end. Every request is counted per face, RPC and
code for the summary line the docs quote.

Used by tests/test_fuzz.py (CI-sized, derandomized) and bench/fuzz.py (large run).
"""

from __future__ import annotations

import atexit
import base64
import collections
import http.client
import json
import math
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.api import annotations_pb2
from google.protobuf import json_format, message_factory, text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import HANG_S, ServerProcess  # noqa: E402

from idf.v1 import diffusion_pb2, field_pb2, market_pb2, predict_pb2, proof_pb2, telemetry_pb2  # noqa: E402

MODULES = (predict_pb2, diffusion_pb2, proof_pb2, market_pb2, telemetry_pb2)
METHODS: list[MethodDescriptor] = [
    method
    for module in MODULES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
ADMIN_TOKEN = "fuzz-admin"
MAX_LINE_BYTES = 8190  # the REST face's request-line and header-line limit (rest.MAX_LINE_BYTES)
# Every call's deadline (the harness's and the server's default). Only a bound on a hang: the work
# ceiling (max_call_site_updates) keeps every admitted call to seconds even on a loaded machine, so
# DEADLINE_EXCEEDED still means work that the ceiling should have refused.
DEADLINE_S = HANG_S
BAD_GRPC = {"INTERNAL", "UNKNOWN", "DATA_LOSS", "DEADLINE_EXCEEDED", "UNAVAILABLE"}
BAD_JSON_CODES = {
    2: "UNKNOWN",
    4: "DEADLINE_EXCEEDED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
}

# ---------------------------------------------------------------------------------------------
# scalar strategies with boundary values

INT32_EDGES = [0, 1, -1, 2, 3, 7, 8, 16, 33, 64, 1000, 2**31 - 1, -(2**31)]
INT64_EDGES = INT32_EDGES + [2**32, 2**53 + 1, 10**15, 2**63 - 1, -(2**63)]
UINT32_EDGES = [0, 1, 2, 8, 64, 2**31, 2**32 - 1]
UINT64_EDGES = UINT32_EDGES + [2**53 + 1, 2**64 - 1]
FLOAT_EDGES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    1e-3,
    1e-300,
    5e-324,
    1e300,
    1e308,
    -1e308,
    math.inf,
    -math.inf,
    math.nan,
]
FLOAT32_EDGES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    1e-3,
    1e-38,
    3e38,
    -3e38,
    math.inf,
    -math.inf,
    math.nan,
]
LONG_SIZES = [256, 4096, 65536, 1 << 20]
WEIRD_STRINGS = [
    "",
    " ",
    "..",
    "../../etc/passwd",
    "%00",
    "\x00",
    "\u202e",
    "é",
    "名前",
    "🙂" * 3,
    "a/b/c",
    "proofs/",
    "market/pools/",
    ":",
    "{}",
    "null",
    "NaN",
    "-1",
    "1e999",
]

_PROOF_TOKENS = [
    base64.urlsafe_b64encode(t.encode()).decode()
    for t in ("before:0", "before:-1", f"before:{2**70}", f"before:{2**63}", "before:1e9", "x:1")
]
_MARKET_TOKENS = [
    base64.urlsafe_b64encode(t.encode()).decode()
    for t in ("seq:0", "seq:-1", f"seq:{2**70}", f"seq:{2**63}", "seq:")
]


@dataclass
class Vocab:
    """Names that make generated requests reach past the first check (filled from the server)."""

    energy_models: list[str] = field(
        default_factory=lambda: ["gaussian-free-field", "phi4", "ising"]
    )
    models: list[str] = field(
        default_factory=lambda: ["physics-advection-diffusion", "nvp-kolmogorov-64"]
    )
    policies: list[str] = field(
        default_factory=lambda: [
            "forecast-default",
            "reconstruction-default",
            "conservation-strict",
        ]
    )
    parameters: list[str] = field(default_factory=lambda: ["kappa", "mass2", "h", "a", "b", "J"])

    def hints(self, f: FieldDescriptor) -> list[str]:
        owner, name = f.containing_type.name, f.name
        if owner == "EnergyModelSpec" and name == "name":
            return self.energy_models
        if name == "model":
            return self.models
        if name == "policy":
            return self.policies
        if name == "pool" or (owner == "GetPoolRequest" and name == "name"):
            return ["market/pools/ceu-pft", "market/pools/nope"]
        if name == "account":
            return ["market/accounts/fuzz-a", "market/accounts/fuzz-b", "market/accounts/system"]
        if owner == "GetProofRequest":
            return ["proofs/0", "proofs/1", "proofs/00000000000000000000000000000000"]
        if owner in ("GetEnergyMapRequest", "WatchEnergyMapRequest") or name == "site":
            return ["sites/a/energyMap", "sites/plant-1/energyMap", "a"]
        if name == "page_token":
            return _PROOF_TOKENS + _MARKET_TOKENS + ["zz", "physics"]
        if owner == "Constraint" and name == "name":
            return ["total", "mean", "nope"]
        if name == "key":
            return self.parameters
        if name == "request_id":
            return ["order-1", "fuzz-1", "fuzz-2"]
        if name == "producer":
            return ["fuzz", "idf"]
        return []


def _long_strings() -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(LONG_SIZES), st.sampled_from(["x", "é", "名", "🙂", "ab/"])
    ).map(lambda t: (t[1] * t[0])[: t[0]])


def strings(hints: list[str]) -> st.SearchStrategy[str]:
    options = [st.sampled_from(WEIRD_STRINGS), st.text(max_size=16), _long_strings()]
    if hints:
        good = st.sampled_from(hints)
        options = [
            good,
            good,
            good,
            good.map(lambda s: s + "/x"),
            good.map(lambda s: s.upper()),
        ] + options
    return st.one_of(options)


def _ints(edges: list[int], lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(-2, 64), st.sampled_from(edges), st.integers(lo, hi))


def scalar(f: FieldDescriptor, vocab: Vocab) -> st.SearchStrategy[Any]:
    t = f.type
    if t in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return _ints(INT32_EDGES, -(2**31), 2**31 - 1)
    if t in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return _ints(INT64_EDGES, -(2**63), 2**63 - 1)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.one_of(st.integers(0, 64), st.sampled_from(UINT32_EDGES))
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.one_of(st.integers(0, 64), st.sampled_from(UINT64_EDGES))
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(
            st.sampled_from(FLOAT_EDGES), st.floats(-10, 10), st.floats(allow_nan=True)
        )
    if t == FieldDescriptor.TYPE_FLOAT:
        return st.one_of(st.sampled_from(FLOAT32_EDGES), st.floats(-10, 10, width=32))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_STRING:
        return strings(vocab.hints(f))
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(
            st.binary(max_size=64), st.sampled_from([0, 1024, 1 << 20]).map(lambda n: b"\x7f" * n)
        )
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        return st.one_of(
            st.sampled_from(known),
            st.sampled_from(known),
            st.sampled_from([-1, 99, 2**31 - 1, -(2**31)]),
        )
    raise TypeError(f"no strategy for {f.full_name}")


# ---------------------------------------------------------------------------------------------
# the tensor message and nested messages

_NP = {
    field_pb2.DTYPE_FLOAT32: np.float32,
    field_pb2.DTYPE_FLOAT64: np.float64,
    field_pb2.DTYPE_INT8: np.int8,
    field_pb2.DTYPE_INT32: np.int32,
}
SMALL_SHAPES = [[8, 8], [16, 16], [32, 32], [64, 64], [4], [16], [4, 4, 4], [2, 3], [1, 1], [8, 16]]
HUGE_SHAPES = [
    [4096, 4096],
    [1 << 20, 1 << 20],
    [2**31 - 1, 2**31 - 1],
    [2**62, 4],
    [2**63 - 1],
    [1024, 1024],
    [0, 8],
    [-1, 8],
    [8, -8],
    [],
    [1] * 12,
    [65536, 65536, 65536],
]


@st.composite
def tensors(draw: st.DrawFn) -> field_pb2.Field:
    """A `Field`: mostly a small well-formed array, sometimes malformed or hugely declared."""
    kind = draw(
        st.sampled_from(["good"] * 6 + ["bad_length", "bad_dtype", "huge_shape", "empty", "odd"])
    )
    shape = draw(
        st.one_of(
            st.sampled_from(SMALL_SHAPES), st.lists(st.integers(1, 12), min_size=1, max_size=3)
        )
    )
    dtype = draw(
        st.sampled_from(
            [field_pb2.DTYPE_FLOAT32] * 3
            + [field_pb2.DTYPE_FLOAT64] * 2
            + [field_pb2.DTYPE_INT8, field_pb2.DTYPE_INT32]
        )
    )
    fill = draw(st.sampled_from(["normal", "normal", "zeros", "constant", "sprinkle"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = int(np.prod(shape))
    values = rng.standard_normal(n)
    if fill == "zeros":
        values[:] = 0
    elif fill == "constant":
        values[:] = draw(st.sampled_from(FLOAT_EDGES))
    elif fill == "sprinkle":
        values[rng.integers(0, n, size=max(1, n // 10))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308])
        )
    with np.errstate(all="ignore"):
        data = values.astype(_NP[dtype]).tobytes()
    if kind == "bad_length":
        data = (
            data[: draw(st.integers(0, max(0, len(data) - 1)))]
            if draw(st.booleans())
            else data + b"\0" * draw(st.integers(1, 9))
        )
    elif kind == "bad_dtype":
        dtype = draw(st.sampled_from([0, 5, 99, -1]))
    elif kind == "huge_shape":
        shape = draw(st.sampled_from(HUGE_SHAPES))
    elif kind == "empty":
        shape, data = draw(st.sampled_from([[], [0], [0, 0]])), b""
    elif kind == "odd":
        data = draw(st.binary(max_size=64))
    msg = field_pb2.Field(shape=shape, dtype=dtype, data=data)
    if draw(st.booleans()):
        msg.spacing.extend(
            draw(st.lists(st.sampled_from(FLOAT_EDGES + [0.1, 1.0]), max_size=len(shape) + 1))
        )
    if draw(st.booleans()):
        msg.boundary = draw(st.sampled_from([0, 1, 2, 3, 7, -1]))
        msg.boundary_value = draw(st.sampled_from(FLOAT_EDGES))
    if draw(st.integers(0, 9)) == 0:
        msg.units = draw(strings(["K", "J/m^3"]))
    return msg


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    from google.protobuf import timestamp_pb2

    seconds = draw(
        st.one_of(
            st.just(int(time.time()) + 60), st.sampled_from([0, -1, 253402300799, 2**40, -(2**62)])
        )
    )
    return timestamp_pb2.Timestamp(
        seconds=seconds, nanos=draw(st.sampled_from([0, 1, 999_999_999, -1]))
    )


_CACHE: dict[tuple[str, int], st.SearchStrategy[Any]] = {}


def messages(desc: Descriptor, vocab: Vocab) -> st.SearchStrategy[Any]:
    """A strategy for any message type, walking its descriptor."""
    key = (desc.full_name, id(vocab))
    if key in _CACHE:
        return _CACHE[key]
    if desc.full_name == "idf.v1.Field":
        strategy: st.SearchStrategy[Any] = tensors()
    elif desc.full_name == "google.protobuf.Timestamp":
        strategy = timestamps()
    else:
        cls = message_factory.GetMessageClass(desc)
        values = {f.name: st.deferred(lambda f=f: field_values(f, vocab)) for f in desc.fields}

        @st.composite
        def build(draw: st.DrawFn) -> Any:
            msg = cls()
            for f in desc.fields:
                if draw(st.integers(0, 9)) < 6:
                    assign(msg, f, draw(values[f.name]))
            return msg

        strategy = build()
    _CACHE[key] = strategy
    return strategy


def field_values(f: FieldDescriptor, vocab: Vocab) -> st.SearchStrategy[Any]:
    """Values for one field: a list for repeated fields, a dict for maps."""
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        k, v = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
        return st.dictionaries(scalar(k, vocab), single(v, vocab), max_size=4)
    one = single(f, vocab)
    if not f.is_repeated:
        return one
    if f.name == "shape":
        return st.one_of(
            st.sampled_from(SMALL_SHAPES),
            st.sampled_from(SMALL_SHAPES),
            st.sampled_from(HUGE_SHAPES),
            st.lists(one, max_size=4),
        )
    return st.one_of(st.lists(one, max_size=4), st.lists(one, min_size=5, max_size=40))


def single(f: FieldDescriptor, vocab: Vocab) -> st.SearchStrategy[Any]:
    return messages(f.message_type, vocab) if f.message_type is not None else scalar(f, vocab)


def assign(msg: Any, f: FieldDescriptor, value: Any) -> None:
    """Set a field, skipping values the protobuf runtime itself refuses (out-of-range ints)."""
    try:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            target = getattr(msg, f.name)
            target.clear()
            target.update(value)
        elif f.is_repeated:
            target = getattr(msg, f.name)
            del target[:]
            if f.message_type is not None:
                for v in value:
                    target.add().CopyFrom(v)
            else:
                target.extend(value)
        elif f.message_type is not None:
            getattr(msg, f.name).CopyFrom(value)
        else:
            setattr(msg, f.name, value)
    except (ValueError, TypeError, OverflowError):
        pass


# ---------------------------------------------------------------------------------------------
# valid seed requests, and mutants of them that reach the engine


def _field(shape: list[int], seed: int = 0, scale: float = 1.0) -> field_pb2.Field:
    values = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    return field_pb2.Field(shape=shape, dtype=field_pb2.DTYPE_FLOAT32, data=values.tobytes())


def seeds(vocab: Vocab) -> dict[str, list[Any]]:
    """A few valid, cheap requests per RPC (also the warm-up)."""
    d, p, pr, m, t = diffusion_pb2, predict_pb2, proof_pb2, market_pb2, telemetry_pb2
    from google.protobuf import timestamp_pb2

    later = timestamp_pb2.Timestamp(seconds=int(time.time()) + 3600)
    u = _field([16, 16], 1)
    return {
        "Predict": [
            p.PredictRequest(
                history=[u], steps=2, transport=p.TransportParameters(diffusivity=0.1)
            ),
            p.PredictRequest(
                history=[_field([64, 64], 2)],
                steps=1,
                model="nvp-kolmogorov-64",
                flow=p.FlowParameters(reynolds=60),
                ensemble_members=2,
                seed=1,
            ),
        ],
        "DetectRegime": [
            p.DetectRegimeRequest(
                frames=[_field([32, 32], i) for i in range(24)], frame_interval=0.5
            )
        ],
        "Sample": [
            d.SampleRequest(
                energy_model=d.EnergyModelSpec(name="ising"),
                shape=[8, 8],
                sample_count=2,
                sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_GIBBS, steps=20),
                seed=1,
            ),
            d.SampleRequest(
                energy_model=d.EnergyModelSpec(
                    name="phi4",
                    parameters={"a": -1.0},
                    constraints=[d.Constraint(name="total", target=0.0)],
                ),
                shape=[8, 8],
                sample_count=2,
                sampler=d.SamplerSpec(kind=d.SAMPLER_KIND_LANGEVIN, steps=20, step_size=0.01),
                seed=2,
            ),
            d.SampleRequest(
                energy_model=d.EnergyModelSpec(name="gaussian-free-field"),
                shape=[8, 8],
                sample_count=2,
                sampler=d.SamplerSpec(
                    kind=d.SAMPLER_KIND_REPLICA_EXCHANGE, steps=10, temperatures=[1, 2]
                ),
                seed=3,
            ),
        ],
        "Reconstruct": [
            d.ReconstructRequest(
                shape=[32, 32],
                observations=[
                    d.Observation(index=[1, 1], value=1.0),
                    d.Observation(index=[5, 9], value=-0.5),
                ],
                sample_count=1,
                seed=1,
            )
        ],
        "ListEnergyModels": [d.ListEnergyModelsRequest()],
        "ListModels": [d.ListModelsRequest(page_size=2)],
        "CreateProof": [
            pr.CreateProofRequest(
                prediction=u,
                reference=_field([16, 16], 3),
                policy="forecast-default",
                producer=pr.Producer(name="fuzz", version="1"),
                request_id="seed-proof",
            )
        ],
        "GetProof": [pr.GetProofRequest(name="proofs/0")],
        "ListProofs": [pr.ListProofsRequest(page_size=3)],
        "ListPolicies": [pr.ListPoliciesRequest()],
        "GetCheckpoint": [pr.GetCheckpointRequest()],
        "GetConsistencyProof": [
            pr.GetConsistencyProofRequest(first_tree_size=1, second_tree_size=1)
        ],
        "GetPublicKey": [pr.GetPublicKeyRequest()],
        "GetPool": [m.GetPoolRequest(name="market/pools/ceu-pft")],
        "Quote": [
            m.QuoteRequest(pool="market/pools/ceu-pft", token_in=m.TOKEN_CEU, amount_in=1000)
        ],
        "Swap": [
            m.SwapRequest(
                pool="market/pools/ceu-pft",
                account="market/accounts/fuzz-a",
                token_in=m.TOKEN_CEU,
                amount_in=10,
                deadline=later,
                request_id="seed-swap",
            )
        ],
        "AddLiquidity": [
            m.AddLiquidityRequest(
                pool="market/pools/ceu-pft",
                account="market/accounts/fuzz-a",
                amount_ceu_desired=10,
                amount_pft_desired=10,
                deadline=later,
                request_id="seed-add",
            )
        ],
        "RemoveLiquidity": [
            m.RemoveLiquidityRequest(
                pool="market/pools/ceu-pft",
                account="market/accounts/fuzz-a",
                shares=1,
                deadline=later,
                request_id="seed-remove",
            )
        ],
        "GetBalance": [m.GetBalanceRequest(account="market/accounts/fuzz-a")],
        "ListTransactions": [
            m.ListTransactionsRequest(account="market/accounts/fuzz-a", page_size=2)
        ],
        "Mint": [
            m.MintRequest(
                account="market/accounts/fuzz-a",
                amount=m.TokenAmount(token=m.TOKEN_CEU, amount=1000),
                request_id="seed-mint",
            )
        ],
        "Publish": [
            t.PublishRequest(
                readings=[t.SensorReading(site="a", sensor="s", index=[1, 1], value=1.0)]
            )
        ],
        "GetEnergyMap": [t.GetEnergyMapRequest(name="sites/a/energyMap")],
        "WatchEnergyMap": [t.WatchEnergyMapRequest(name="sites/a/energyMap")],
    }


def _slots(msg: Any) -> list[tuple[Any, FieldDescriptor]]:
    """Every (message, field) a mutation may replace: all fields of the message and of its set
    sub-messages (not inside Field tensors, which mutate whole)."""
    out = []
    for f in msg.DESCRIPTOR.fields:
        out.append((msg, f))
        if (
            f.message_type is None
            or f.message_type.GetOptions().map_entry
            or f.message_type.full_name in ("idf.v1.Field", "google.protobuf.Timestamp")
        ):
            continue
        if f.is_repeated:
            for child in getattr(msg, f.name):
                out.extend(_slots(child))
        elif msg.HasField(f.name):
            out.extend(_slots(getattr(msg, f.name)))
    return out


@st.composite
def mutants(draw: st.DrawFn, seed: Any, vocab: Vocab) -> Any:
    """A valid seed with 0-3 of its fields replaced (or cleared)."""
    msg = type(seed)()
    msg.CopyFrom(seed)
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        slots = _slots(msg)
        if not slots:
            break
        parent, f = slots[draw(st.integers(0, len(slots) - 1))]
        if draw(st.integers(0, 5)) == 0:
            parent.ClearField(f.name)
        else:
            assign(parent, f, draw(field_values(f, vocab)))
    return msg


def requests(method: MethodDescriptor, vocab: Vocab) -> st.SearchStrategy[Any]:
    """Requests for one RPC: mutants of its valid seeds, or generated from its descriptor."""
    base = seeds(vocab).get(method.name, [])
    options = [mutants(s, vocab) for s in base] * 2 + [messages(method.input_type, vocab)]
    return st.one_of(options)


# ---------------------------------------------------------------------------------------------
# cases: what one fuzz request sends


@dataclass
class Case:
    face: str  # "grpc" | "rest"
    method: MethodDescriptor | None  # None: a REST path that matches no route
    kind: str  # how it was made: message, raw, garbled, json-mutant, json-random, bytes, ...
    message: Any = None  # the protobuf request, when there is one
    payload: bytes = b""  # gRPC: serialized request (or raw bytes); REST: the body
    metadata: tuple[tuple[str, str], ...] = ()
    stream: list[bytes] = field(default_factory=list)  # client-streaming messages
    verb: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def rpc(self) -> str:
        return self.method.name if self.method is not None else "(no route)"

    def describe(self, limit: int = 600) -> str:
        """A short reproduction: the request in text format or the HTTP request line and body."""
        if self.face == "grpc":
            if self.message is not None and self.kind == "message":
                text = _elide(text_format.MessageToString(self.message, as_one_line=True))
                body = f"{self.method.full_name} {{{_clip(text, limit)}}}"
            else:
                body = f"{self.method.full_name} raw bytes ({self.kind}) {_clip(repr(self.payload), limit)}"
            meta = f" metadata={dict(self.metadata)}" if self.metadata else ""
            return body + meta
        heads = {k: _clip(v, 80) for k, v in self.headers.items() if k.lower() != "content-type"}
        return f"{self.verb} {_clip(self.path, 300)} headers={heads} body={_clip(_elide(self.payload.decode('utf-8', 'replace')), limit)}"


_LONG_DATA = re.compile(r'(data: |"data": )"([^"\\]|\\.){64,}"')


def _elide(text: str) -> str:
    """Tensor bytes say little in a repro: keep their length, drop their content."""
    return _LONG_DATA.sub(
        lambda m: f'{m.group(1)}"<{len(m.group(0)) - len(m.group(1)) - 2} chars>"', text
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


_ACCOUNT_META = st.one_of(
    st.just(()),
    st.tuples(
        st.tuples(
            st.just("x-idf-account"),
            st.sampled_from(["market/accounts/fuzz-a", "fuzz-b", "", "x" * 5000, "../../"]),
        )
    ).map(tuple),
)
_AUTH_META = st.one_of(
    st.just(()),
    st.just((("authorization", f"Bearer {ADMIN_TOKEN}"),)),
    st.just((("authorization", "Bearer nope"),)),
)


@st.composite
def grpc_cases(draw: st.DrawFn, vocab: Vocab) -> Case:
    method = draw(st.sampled_from(METHODS))
    metadata = draw(_ACCOUNT_META) + draw(_AUTH_META)
    how = draw(st.sampled_from(["message"] * 8 + ["raw", "garbled"]))
    if how == "raw":
        payload = draw(
            st.one_of(
                st.binary(max_size=256),
                st.sampled_from([b"\xff" * 4096, b"\x0a\xff\xff\xff\xff\x0f"]),
            )
        )
        return Case("grpc", method, "raw", payload=payload, metadata=metadata, stream=[payload])
    msg = draw(requests(method, vocab))
    payload = msg.SerializeToString()
    if how == "garbled" and payload:
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        buf = bytearray(payload)
        for i in rng.integers(0, len(buf), size=max(1, len(buf) // 50)):
            buf[i] = int(rng.integers(0, 256))
        payload = bytes(buf[: draw(st.integers(1, len(buf)))])
        return Case(
            "grpc",
            method,
            "garbled",
            message=msg,
            payload=payload,
            metadata=metadata,
            stream=[payload],
        )
    stream = [payload] * draw(st.integers(0, 3)) if method.client_streaming else []
    return Case(
        "grpc", method, "message", message=msg, payload=payload, metadata=metadata, stream=stream
    )


def _template(method: MethodDescriptor) -> tuple[str, str, str]:
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    return verb.upper(), getattr(rule, verb), rule.body


ROUTED = [
    m for m in METHODS if m.GetOptions().Extensions[annotations_pb2.http].WhichOneof("pattern")
]

_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "TOKEN_CEU", "1e999"]),
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _get_path(msg: Any, path: str) -> Any:
    for name in path.split("."):
        msg = getattr(msg, name)
    return msg


def _segment(draw: st.DrawFn) -> str:
    return draw(
        st.one_of(
            st.sampled_from(["a", "ceu-pft", "0", "nope", "..", "x" * 3000]),
            st.text(min_size=1, max_size=12),
        )
    )


@st.composite
def rest_cases(draw: st.DrawFn, vocab: Vocab) -> Case:
    headers = {
        "Content-Type": draw(
            st.sampled_from(
                ["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded", ""]
            )
        )
    }
    timeout = draw(
        st.sampled_from(
            [str(DEADLINE_S)] * 12
            + ["abc", "-1", "0", "NaN", "inf", "1e308", "", " 5", "1e-9", "9" * 400]
        )
    )
    headers["x-idf-timeout"] = timeout
    for key, value in draw(_ACCOUNT_META) + draw(_AUTH_META):
        headers[key] = value
    if draw(st.integers(0, 29)) == 0:  # no route at all
        verb = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
        path = "/" + "/".join(
            urllib.parse.quote(_segment(draw), safe="") for _ in range(draw(st.integers(0, 4)))
        )
        return Case("rest", None, "no-route", verb=verb, path=path, headers=headers, payload=b"")
    method = draw(st.sampled_from(ROUTED))
    verb, template, body_rule = _template(method)
    msg = draw(requests(method, vocab))
    if draw(st.integers(0, 19)) == 0:
        verb = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))

    bound: set[str] = set()

    def fill(m: Any) -> str:
        var, _, pattern = m.group(1).partition("=")
        bound.add(var.split(".")[0])
        value = _get_path(msg, var) if var else ""
        pattern = pattern or "*"
        if isinstance(value, str) and value and draw(st.integers(0, 3)) > 0:
            return urllib.parse.quote(value, safe="/")
        parts = [
            urllib.parse.quote(_segment(draw), safe="") if s == "*" else s
            for s in pattern.split("/")
        ]
        return "/".join(parts)

    import re

    path = re.sub(r"\{([^}]*)\}", fill, template)
    how = draw(
        st.sampled_from(["json"] * 6 + ["json-mutant"] * 3 + ["json-random", "bytes", "deep"])
    )
    query: list[tuple[str, str]] = []
    body = b""
    if body_rule == "*" and verb != "GET":
        try:
            doc = json_format.MessageToDict(msg)
        except (
            ValueError,
            TypeError,
            json_format.Error,
        ):  # e.g. a Timestamp outside the JSON range
            doc, how = draw(_JSON), "json-random"
        if how == "json-mutant":
            doc = _mutate_json(draw, doc, msg)
        elif how == "json-random":
            doc = draw(_JSON)
        body = json.dumps(doc).encode()
        if how == "bytes":
            body = draw(
                st.one_of(st.binary(max_size=256), st.just(b"{" * 5000), st.just(b'{"a":' * 3000))
            )
        elif how == "deep":
            depth = draw(st.sampled_from([100, 1000, 100_000]))
            body = b"[" * depth + b"]" * depth
    else:
        query = _query(draw, msg, bound)
        if how in ("json-mutant", "json-random", "bytes", "deep"):
            query.append(
                (
                    draw(
                        st.sampled_from(
                            [
                                "foo.bar",
                                "pageSize.x",
                                "page_size",
                                "unknown",
                                "verdict",
                                "a" * 300,
                                "名",
                            ]
                        )
                    ),
                    draw(
                        st.sampled_from(
                            ["1", "abc", "", "-1", "99999999999999999999999", "NaN", "VERDICT_PASS"]
                        )
                    ),
                )
            )
            how = "query-mutant"
        else:
            how = "query"
    if query:
        path += "?" + urllib.parse.urlencode(query)
    return Case(
        "rest", method, how, message=msg, verb=verb, path=path, headers=headers, payload=body
    )


def _query(draw: st.DrawFn, msg: Any, bound: set[str]) -> list[tuple[str, str]]:
    out = []
    for f, value in msg.ListFields():
        if f.name in bound or f.message_type is not None:
            continue
        key = f.json_name if draw(st.booleans()) else f.name
        values = list(value) if f.is_repeated else [value]
        for v in values:
            if f.enum_type is not None:
                names = f.enum_type.values_by_number
                v = names[v].name if v in names and draw(st.booleans()) else v
            elif isinstance(v, bytes):
                v = base64.b64encode(v).decode()
            out.append((key, str(v)))
    return out


def _mutate_json(draw: st.DrawFn, doc: Any, msg: Any) -> Any:
    """Wrong types, unknown keys, both members of a oneof, unknown enum names, huge numbers."""
    if not isinstance(doc, dict):
        return doc
    op = draw(st.sampled_from(["replace", "replace", "unknown", "oneof", "enum", "huge", "null"]))
    keys = [f.json_name for f in msg.DESCRIPTOR.fields]
    key = draw(st.sampled_from(keys)) if keys else "x"
    if op == "replace":
        doc[key] = draw(_JSON)
    elif op == "unknown":
        doc[draw(st.sampled_from(["foo", "fooBar", "@type", "", "history.shape"]))] = draw(_JSON)
    elif op == "oneof":
        for oneof in msg.DESCRIPTOR.oneofs:
            for f in oneof.fields:
                doc[f.json_name] = draw(st.sampled_from(["1", 1, "2"]))
    elif op == "enum":
        doc[key] = draw(
            st.sampled_from(["TOKEN_NOPE", "SAMPLER_KIND_NOPE", 99, -1, "", "DTYPE_FLOAT32"])
        )
    elif op == "huge":
        doc[key] = draw(
            st.sampled_from(
                [10**30, -(10**30), 1e308, "1e999", "-1e999", 2**63, "18446744073709551616"]
            )
        )
    else:
        doc[key] = None
    return doc


@st.composite
def cases(draw: st.DrawFn, vocab: Vocab, rest: bool = True) -> Case:
    if rest and draw(st.booleans()):
        return draw(rest_cases(vocab))
    return draw(grpc_cases(vocab))


# ---------------------------------------------------------------------------------------------
# the server under test


def _log_entry(line: str) -> dict[str, Any]:
    """A JSON log line as a dict; {} for anything else (a traceback line on the way out)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


class FuzzServer:
    """`idf serve` as a child process with both faces, a work ceiling and an admin token; RSS
    and log lines readable, restartable after a crash."""

    def __init__(self, **settings: object) -> None:
        self.settings = {
            "rest_port": 0,
            "admin_token": ADMIN_TOKEN,
            "max_call_site_updates": 50_000_000,
            "default_deadline": DEADLINE_S,
            "workers": 2,
            **settings,
        }
        self.start()

    def start(self) -> None:
        env = {f"IDF_{k.upper()}": str(v) for k, v in self.settings.items()}
        env["IDF_REST_PORT"] = "0"
        self.proc = ServerProcess(env=env)
        atexit.register(self.proc.kill)
        self.target = self.proc.target
        # the REST face logs {"message": "rest listening", "port": ...} once bound
        index = self.proc.wait_for_line(
            lambda line: _log_entry(line).get("message") == "rest listening"
        )
        self.rest_port = int(_log_entry(self.proc.lines[index])["port"])

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def alive(self) -> bool:
        return self.proc.proc.poll() is None

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def serving(self) -> bool:
        try:
            with grpc.insecure_channel(self.target) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=HANG_S
                )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def log_since(self, index: int) -> list[dict[str, Any]]:
        out = []
        for line in self.proc.lines[index:]:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line.strip()})
        return out

    def stop(self) -> int | None:
        if self.alive():
            self.proc.terminate()
            try:
                return self.proc.wait(60)
            except Exception:  # noqa: BLE001
                self.proc.kill()
        return self.proc.proc.returncode


# ---------------------------------------------------------------------------------------------
# the harness: send, classify, count


@dataclass
class Finding:
    face: str
    rpc: str
    outcome: str
    count: int = 0
    smallest: str = ""
    smallest_size: int = 1 << 62
    log: str = ""
    seconds: float = 0.0


class Harness:
    def __init__(
        self, server: FuzzServer, deadline: float = DEADLINE_S, restart: bool = False
    ) -> None:
        self.server = server
        self.deadline = deadline
        self.restart = restart
        self.lock = threading.Lock()
        self.counts: dict[str, collections.Counter[str]] = {
            "grpc": collections.Counter(),
            "rest": collections.Counter(),
        }
        self.per_rpc: collections.Counter[str] = collections.Counter()
        self.findings: dict[tuple[str, str, str], Finding] = {}
        self.crashes = 0
        self.slowest = (0.0, "")
        self._local = threading.local()
        self._restarting = threading.Lock()
        self._open()

    def _open(self) -> None:
        self.channel = grpc.insecure_channel(
            self.server.target,
            options=[
                ("grpc.max_send_message_length", 256 << 20),
                ("grpc.max_receive_message_length", 256 << 20),
            ],
        )

    @property
    def requests(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def vocab(self) -> Vocab:
        vocab = Vocab()
        try:
            reply = self.channel.unary_unary(
                "/idf.v1.DiffusionService/ListModels",
                request_serializer=None,
                response_deserializer=diffusion_pb2.ListModelsResponse.FromString,
            )(diffusion_pb2.ListModelsRequest(page_size=100).SerializeToString(), timeout=HANG_S)
            vocab.models = sorted({m.name for m in reply.models} | set(vocab.models))
        except grpc.RpcError:
            pass
        return vocab

    # -- sending

    def send(self, case: Case) -> str:
        log_index = len(self.server.proc.lines)
        start = time.perf_counter()
        if case.face == "grpc":
            outcome, bad = self._grpc(case)
        else:
            outcome, bad = self._rest(case)
        elapsed = time.perf_counter() - start
        with self.lock:
            self.counts[case.face][outcome] += 1
            self.per_rpc[f"{case.face}:{case.rpc}"] += 1
            if elapsed > self.slowest[0]:
                self.slowest = (elapsed, f"{case.face} {case.rpc} -> {outcome}")
        if bad is not None:
            if not self.server.alive():
                bad = "crash (server process exited)"
            self._record(case, bad, log_index, elapsed)
            with self._restarting:  # one thread restarts; the others see it alive again
                if not self.server.alive():
                    self.crashes += 1
                    if self.restart:
                        self.server.start()
                        self._open()  # the old channel is dropped, not closed: other threads may hold it
        return outcome

    def _grpc(self, case: Case) -> tuple[str, str | None]:
        path = f"/{case.method.containing_service.full_name}/{case.method.name}"
        kw = dict(request_serializer=None, response_deserializer=None)
        channel = self.channel
        try:
            if case.method.client_streaming:
                channel.stream_unary(path, **kw)(
                    iter(case.stream), timeout=self.deadline, metadata=case.metadata
                )
            elif case.method.server_streaming:
                for _ in channel.unary_stream(path, **kw)(
                    case.payload, timeout=self.deadline, metadata=case.metadata
                ):
                    pass
            else:
                channel.unary_unary(path, **kw)(
                    case.payload, timeout=self.deadline, metadata=case.metadata
                )
            return "OK", None
        except grpc.RpcError as e:
            code = e.code().name if e.code() is not None else "NONE"
            return code, (code if code in BAD_GRPC else None)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "port", None) != self.server.rest_port:
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.server.rest_port, timeout=self.deadline + 10
            )
            self._local.conn, self._local.port = conn, self.server.rest_port
        return conn

    def _rest(self, case: Case) -> tuple[str, str | None]:
        headers = {k: v for k, v in case.headers.items() if v != "" or k.lower() == "x-idf-timeout"}
        body_out = case.payload if case.payload or case.verb != "GET" else None
        error: Exception | None = None
        for attempt in (0, 1):
            conn = self._conn()
            reused = conn.sock is not None
            try:
                conn.request(case.verb, case.path, body=body_out, headers=headers)
                response = conn.getresponse()
                body = response.read()
                status, ctype = response.status, response.getheader("Content-Type", "")
                if response.will_close:
                    conn.close()
                error = None
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self._local.conn = None
                error = e
                stale = isinstance(
                    e, (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)
                )
                if not (reused and attempt == 0 and stale):
                    break
                # a keep-alive connection the server closed while idle: retry once on a new one, as clients do
        if error is not None:
            if len(case.path) > MAX_LINE_BYTES or any(
                len(k) + len(v) > MAX_LINE_BYTES for k, v in headers.items()
            ):
                # past the face's line limit the server answers 400 and closes while the client is
                # still sending: a reset is the documented answer (the server keeps serving: checked)
                return "closed (line too long)", None
            return f"transport {type(error).__name__}", f"transport error {type(error).__name__}"
        outcome = str(status)
        short = _caller_deadline(case.headers.get("x-idf-timeout", "")) < DEADLINE_S
        code = _json_code(body)
        if status >= 500 and not (status == 504 and short):
            return outcome, f"HTTP {status}" + (f" (code {code})" if code is not None else "")
        if ctype.startswith("application/x-ndjson"):
            for line in body.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    return outcome, "malformed NDJSON line"
                if "error" in entry:
                    code = entry["error"].get("code") if isinstance(entry["error"], dict) else None
                    outcome = f"{status}+stream-error-{code}"
                    if code in BAD_JSON_CODES and not (code == 4 and short):
                        return outcome, f"NDJSON error {BAD_JSON_CODES[code]}"
                    problem = _status_problem(entry["error"])
                    if problem:
                        return outcome, f"NDJSON error body: {problem}"
        elif status >= 400:
            try:
                problem = _status_problem(json.loads(body))
            except ValueError:
                problem = "not JSON"
            if problem:
                return outcome, f"HTTP {status} error body: {problem}"
        return outcome, None

    # -- findings

    def _record(self, case: Case, outcome: str, log_index: int, elapsed: float) -> None:
        text = case.describe()
        size = len(case.payload) + len(case.path)
        log_line = _traceback_tail(self.server.log_since(log_index), case.rpc)
        key = (case.face, case.rpc, outcome)
        with self.lock:
            finding = self.findings.setdefault(key, Finding(case.face, case.rpc, outcome))
            finding.count += 1
            if size < finding.smallest_size:
                finding.smallest, finding.smallest_size, finding.seconds = text, size, elapsed
                finding.log = log_line or finding.log
            elif not finding.log:
                finding.log = log_line

    def check_serving(self) -> list[str]:
        problems = []
        if not self.server.alive():
            problems.append(f"server process exited with {self.server.proc.proc.returncode}")
        elif not self.server.serving():
            problems.append("health is not SERVING")
        return problems

    def summary(self, **extra: Any) -> dict[str, Any]:
        return {
            "fuzz": "idf.v1",
            "requests": self.requests,
            "faces": {
                face: {"requests": sum(c.values()), "codes": dict(sorted(c.items()))}
                for face, c in self.counts.items()
            },
            "per_rpc": dict(sorted(self.per_rpc.items())),
            "failures": sum(f.count for f in self.findings.values()),
            "distinct_failures": len(self.findings),
            "crashes": self.crashes,
            "slowest_s": round(self.slowest[0], 3),
            "slowest": self.slowest[1],
            **extra,
        }

    def report(self) -> str:
        """The findings as markdown: one entry per (face, RPC, outcome) with the smallest request seen."""
        out = []
        for f in sorted(self.findings.values(), key=lambda f: (f.rpc, f.face, f.outcome)):
            out.append(
                f"- **{f.rpc}** ({f.face}) → `{f.outcome}` ×{f.count}, {f.seconds:.2f} s\n"
                f"  - request: `{f.smallest}`\n" + (f"  - server log: `{f.log}`\n" if f.log else "")
            )
        return "\n".join(out)


def _json_code(body: bytes) -> int | None:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def _caller_deadline(header: str) -> float:
    """The deadline a REST case asked for: a 504 is the caller's doing when it asked for less than
    the harness deadline (a 1 ns deadline passes before any work)."""
    try:
        value = float(header)
    except ValueError:
        return DEADLINE_S
    return value if math.isfinite(value) and value > 0 else DEADLINE_S


def _status_problem(status: Any) -> str | None:
    """What is wrong with a REST error body that should be a google.rpc.Status with ErrorInfo."""
    if not isinstance(status, dict) or not isinstance(status.get("code"), int):
        return "no integer code"
    if not any(
        isinstance(d, dict)
        and d.get("@type", "").endswith("google.rpc.ErrorInfo")
        and d.get("reason")
        for d in status.get("details", [])
    ):
        return "no ErrorInfo reason"
    return None


def _traceback_tail(entries: list[dict[str, Any]], rpc: str) -> str:
    lines = [e for e in entries if e.get("exception") or e.get("level") in ("ERROR", "CRITICAL")]
    if not lines:
        return ""
    pick = next((e for e in reversed(lines) if rpc in str(e.get("rpc", ""))), lines[-1])
    exc = str(pick.get("exception", "")).strip().splitlines()
    where = [x.strip() for x in exc if x.strip().startswith("File ")]
    last = exc[-1] if exc else pick.get("message", "")
    return _clip(f"{pick.get('message', '')}: {last}" + (f" [{where[-1]}]" if where else ""), 400)


def warm_up(harness: Harness, vocab: Vocab, rounds: int = 2) -> None:
    """Every seed request on both faces, `rounds` times (loads models, fills caches)."""
    for _ in range(rounds):
        for name, msgs in seeds(vocab).items():
            method = next(m for m in METHODS if m.name == name)
            for msg in msgs:
                payload = msg.SerializeToString()
                harness.send(
                    Case(
                        "grpc",
                        method,
                        "message",
                        message=msg,
                        payload=payload,
                        stream=[payload] if method.client_streaming else [],
                    )
                )
                verb, template, body_rule = _template(method)
                import re

                path = re.sub(
                    r"\{([^}=]*)(=[^}]*)?\}", lambda m: str(_get_path(msg, m.group(1))), template
                )
                body = (
                    json.dumps(json_format.MessageToDict(msg)).encode() if body_rule == "*" else b""
                )
                harness.send(
                    Case(
                        "rest",
                        method,
                        "seed",
                        message=msg,
                        verb=verb,
                        path=path,
                        payload=body,
                        headers={
                            "Content-Type": "application/json",
                            "x-idf-timeout": str(DEADLINE_S),
                        },
                    )
                )


def machine() -> dict[str, Any]:
    import platform

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
