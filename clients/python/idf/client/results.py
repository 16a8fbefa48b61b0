"""Decoded results of the SDK's calls: plain dataclasses with numpy arrays for fields, names for
enums (``"CEU"``, ``"chaotic"``), and the response message itself in ``raw`` for anything the
dataclass leaves out. Both twins (`Client`, `AsyncClient`) decode with these functions."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message

from idf.client._protocol import Usage, usage_from
from idf.client.fields import from_field
from idf.v1 import diffusion_pb2, keys_pb2, market_pb2, predict_pb2, proof_pb2, telemetry_pb2


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    """TOKEN_CEU -> "CEU", REGIME_CHAOTIC -> "chaotic" (lower-cased where the API speaks lower)."""
    return enum.Name(value).removeprefix(prefix)


def token_name(value: int) -> str:
    return _enum_name(market_pb2.Token, value, "TOKEN_")


@dataclass(frozen=True)
class Regime:
    regime: str  # "steady" | "periodic" | "chaotic" | "undetermined"
    probabilities: dict[str, float]
    features: dict[str, float]
    frames_needed: int
    model: str
    raw: predict_pb2.DetectRegimeResponse = dataclasses.field(repr=False)


def regime_from(r: predict_pb2.DetectRegimeResponse) -> Regime:
    def name(v: int) -> str:
        return _enum_name(predict_pb2.Regime, v, "REGIME_").lower()

    return Regime(
        name(r.regime),
        {name(p.regime): p.probability for p in r.probabilities},
        dict(r.features),
        r.frames_needed,
        r.model,
        r,
    )


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    default: float
    minimum: float
    maximum: float


@dataclass(frozen=True)
class EnergyModel:
    name: str
    description: str
    parameters: list[Parameter]
    samplers: list[str]  # "langevin", "mala", ... (SamplerKind names, lower-case, dashes)
    accepts_external_field: bool
    constraints: list[str]
    raw: diffusion_pb2.EnergyModel = dataclasses.field(repr=False)


def sampler_name(kind: int) -> str:
    return _enum_name(diffusion_pb2.SamplerKind, kind, "SAMPLER_KIND_").lower().replace("_", "-")


def energy_models_from(r: diffusion_pb2.ListEnergyModelsResponse) -> list[EnergyModel]:
    return [
        EnergyModel(
            m.name,
            m.description,
            [
                Parameter(p.name, p.description, p.default_value, p.minimum, p.maximum)
                for p in m.parameters
            ],
            [sampler_name(s) for s in m.samplers],
            m.accepts_external_field,
            list(m.constraints),
            m,
        )
        for m in r.energy_models
    ]


@dataclass(frozen=True)
class Model:
    name: str
    task: str  # "forecast" | "denoise" | "regime"
    description: str
    version: str
    learned: bool
    history_frames: int  # frames of history a forecaster needs (0: not a forecaster)
    raw: diffusion_pb2.Model = dataclasses.field(repr=False)


def models_from(r: diffusion_pb2.ListModelsResponse) -> list[Model]:
    return [
        Model(
            m.name,
            _enum_name(diffusion_pb2.ModelTask, m.task, "MODEL_TASK_").lower(),
            m.description,
            m.version,
            m.learned,
            m.history_frames,
            m,
        )
        for m in r.models
    ]


@dataclass(frozen=True)
class SampleProgress:
    """A progress report of a Sample stream."""

    step: int
    total_steps: int
    temperature: float
    mean_energy: float
    acceptance_rate: float
    raw: diffusion_pb2.SampleProgress = dataclasses.field(repr=False)


@dataclass(frozen=True)
class SampleResult:
    """The end of a Sample stream: the samples, one row of diagnostics per sample (float64)."""

    samples: np.ndarray  # (count, *shape)
    energy: np.ndarray  # (count,)
    energy_per_site: np.ndarray
    total: np.ndarray
    constraint_residual: np.ndarray
    acceptance_rate: np.ndarray
    effective_sample_size: float
    usage: Usage
    raw: diffusion_pb2.SampleResult = dataclasses.field(repr=False)


def sample_event_from(m: diffusion_pb2.SampleResponse) -> SampleProgress | SampleResult:
    if m.WhichOneof("event") == "progress":
        g = m.progress
        return SampleProgress(
            g.step, g.total_steps, g.temperature, g.mean_energy, g.acceptance_rate, g
        )
    r = m.result

    def column(name: str) -> np.ndarray:
        return np.array([getattr(s.diagnostics, name) for s in r.samples], dtype=np.float64)

    samples = np.stack([from_field(s.field) for s in r.samples]) if r.samples else np.zeros((0,))
    return SampleResult(
        samples,
        column("energy"),
        column("energy_per_site"),
        column("total"),
        column("constraint_residual"),
        column("acceptance_rate"),
        r.effective_sample_size,
        usage_from(r.usage),
        r,
    )


def _verdict(v: int) -> str:
    return (
        "" if v == proof_pb2.VERDICT_UNSPECIFIED else _enum_name(proof_pb2.Verdict, v, "VERDICT_")
    )


@dataclass(frozen=True)
class Check:
    metric: str
    comparison: str  # "<=" or ">="
    threshold: float
    value: float  # the measured value (0 in a policy's listing)
    verdict: str  # "PASS" | "FAIL" ("" in a policy's listing)


def _checks(checks: Any) -> list[Check]:
    return [
        Check(c.metric, c.comparison, c.threshold, c.value, _verdict(c.verdict)) for c in checks
    ]


@dataclass(frozen=True)
class Proof:
    """A signed proof record and what it says. Verify it offline with
    `idf.client.proofs.verify_proof` (which takes this or `raw`)."""

    name: str  # proofs/{id}
    verdict: str  # "PASS" | "FAIL"
    policy: str
    metrics: dict[str, float]
    checks: list[Check]
    input_digests: dict[str, str]  # role -> array digest
    producer: tuple[str, str]  # (name, version)
    create_time: datetime.datetime | None
    leaf_index: int | None  # its place in the log, when the answer carries an inclusion proof
    record: bytes  # the signed record (canonical JSON)
    signature: bytes  # Ed25519 over `record` by the log's key
    reward_pft: int = 0  # what creating it paid (create_proof only)
    reward_reason: str = ""
    raw: proof_pb2.Proof = dataclasses.field(default_factory=proof_pb2.Proof, repr=False)


def proof_from(m: proof_pb2.Proof, reward_pft: int = 0, reward_reason: str = "") -> Proof:
    return Proof(
        m.name,
        _verdict(m.verdict),
        m.policy,
        {x.name: x.value for x in m.metrics},
        _checks(m.checks),
        dict(m.input_digests),
        (m.producer.name, m.producer.version),
        m.create_time.ToDatetime(tzinfo=datetime.timezone.utc)
        if m.HasField("create_time")
        else None,
        m.inclusion_proof.leaf_index if m.HasField("inclusion_proof") else None,
        m.record,
        m.signature,
        reward_pft,
        reward_reason,
        m,
    )


@dataclass(frozen=True)
class ProofPage:
    proofs: list[Proof]
    next_page_token: str  # "" on the last page
    raw: proof_pb2.ListProofsResponse = dataclasses.field(repr=False)


def proof_page_from(r: proof_pb2.ListProofsResponse) -> ProofPage:
    return ProofPage([proof_from(m) for m in r.proofs], r.next_page_token, r)


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    checks: list[Check]
    raw: proof_pb2.Policy = dataclasses.field(repr=False)


def policies_from(r: proof_pb2.ListPoliciesResponse) -> list[Policy]:
    return [Policy(m.name, m.description, _checks(m.checks), m) for m in r.policies]


@dataclass(frozen=True)
class Reconstruction:
    mean: np.ndarray
    stddev: np.ndarray
    samples: np.ndarray | None  # (count, *shape) when asked for (return_samples)
    usage: Usage
    raw: diffusion_pb2.ReconstructResponse = dataclasses.field(repr=False)


def reconstruction_from(r: diffusion_pb2.ReconstructResponse) -> Reconstruction:
    samples = np.stack([from_field(s) for s in r.samples]) if r.samples else None
    return Reconstruction(from_field(r.mean), from_field(r.stddev), samples, usage_from(r.usage), r)


@dataclass(frozen=True)
class Pool:
    name: str
    reserve_ceu: int  # base units
    reserve_pft: int
    total_shares: int
    fee_bps: int
    raw: market_pb2.Pool = dataclasses.field(repr=False)


def pool_from(p: market_pb2.Pool) -> Pool:
    return Pool(p.name, p.reserve_ceu, p.reserve_pft, p.total_shares, p.fee_bps, p)


@dataclass(frozen=True)
class Quote:
    amount_in: int
    amount_out: int
    fee: int
    price_impact: float
    raw: market_pb2.QuoteResponse = dataclasses.field(repr=False)


def quote_from(r: market_pb2.QuoteResponse) -> Quote:
    return Quote(r.amount_in, r.amount_out, r.fee, r.price_impact, r)


@dataclass(frozen=True)
class Swap:
    token_in: str  # "CEU" or "PFT": what the account paid
    amount_in: int  # base units paid
    token_out: str
    amount_out: int  # base units received
    pool: Pool  # the pool after the swap
    transaction_id: str
    raw: market_pb2.SwapResponse = dataclasses.field(repr=False)


def swap_from(r: market_pb2.SwapResponse, token_in: int) -> Swap:
    token_out = market_pb2.TOKEN_PFT if token_in == market_pb2.TOKEN_CEU else market_pb2.TOKEN_CEU
    return Swap(
        token_name(token_in),
        r.amount_in,
        token_name(token_out),
        r.amount_out,
        pool_from(r.pool),
        r.transaction_id,
        r,
    )


@dataclass(frozen=True)
class Liquidity:
    """A deposit (shares minted) or a withdrawal (shares burned), amounts in base units."""

    amount_ceu: int
    amount_pft: int
    shares: int
    pool: Pool  # the pool after it
    transaction_id: str
    raw: Message = dataclasses.field(repr=False)


def add_liquidity_from(r: market_pb2.AddLiquidityResponse) -> Liquidity:
    return Liquidity(r.amount_ceu, r.amount_pft, r.shares, pool_from(r.pool), r.transaction_id, r)


def remove_liquidity_from(r: market_pb2.RemoveLiquidityResponse, shares: int) -> Liquidity:
    return Liquidity(r.amount_ceu, r.amount_pft, shares, pool_from(r.pool), r.transaction_id, r)


def balances_from(r: market_pb2.GetBalanceResponse) -> dict[str, int]:
    return {token_name(b.token): b.amount for b in r.balances}


@dataclass(frozen=True)
class Posting:
    account: str
    token: str
    amount: int


@dataclass(frozen=True)
class Transaction:
    id: str
    kind: str
    postings: list[Posting]
    create_time: str  # RFC 3339
    request_id: str
    reference: str


@dataclass(frozen=True)
class TransactionPage:
    transactions: list[Transaction]
    next_page_token: str
    raw: market_pb2.ListTransactionsResponse = dataclasses.field(repr=False)


def transactions_from(r: market_pb2.ListTransactionsResponse) -> TransactionPage:
    return TransactionPage(
        [
            Transaction(
                t.id,
                t.kind,
                [Posting(p.account, token_name(p.token), p.amount) for p in t.postings],
                t.create_time.ToJsonString(),
                t.request_id,
                t.reference,
            )
            for t in r.transactions
        ],
        r.next_page_token,
        r,
    )


@dataclass(frozen=True)
class Mint:
    transaction_id: str
    token: str
    balance: int  # the account's balance of the token afterwards
    raw: market_pb2.MintResponse = dataclasses.field(repr=False)


def mint_from(r: market_pb2.MintResponse) -> Mint:
    return Mint(r.transaction_id, token_name(r.balance.token), r.balance.amount, r)


@dataclass(frozen=True)
class Invariant:
    name: str
    description: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class LedgerAudit:
    passed: bool
    invariants: list[Invariant]
    supply: dict[str, int]
    system_balances: dict[str, dict[str, int]]  # account -> token -> amount
    open_reservation_count: int
    open_reservation_total: int
    journal_entries: int
    raw: market_pb2.GetLedgerAuditResponse = dataclasses.field(repr=False)


def ledger_audit_from(r: market_pb2.GetLedgerAuditResponse) -> LedgerAudit:
    system: dict[str, dict[str, int]] = {}
    for b in r.system_balances:
        system.setdefault(b.account, {})[token_name(b.token)] = b.amount
    return LedgerAudit(
        r.passed,
        [Invariant(i.name, i.description, i.passed, i.detail) for i in r.invariants],
        {token_name(s.token): s.amount for s in r.supply},
        system,
        r.open_reservation_count,
        r.open_reservation_total,
        r.journal_entries,
        r,
    )


@dataclass(frozen=True)
class EnergyMap:
    name: str
    field: np.ndarray  # NaN where no reading has arrived
    update_time: str  # RFC 3339
    reading_count: int
    sequence: int  # readings-stream sequence through which readings are folded in
    observed_count: int  # cells holding a reading
    raw: telemetry_pb2.EnergyMap = dataclasses.field(repr=False)


def energy_map_from(m: telemetry_pb2.EnergyMap) -> EnergyMap:
    values = from_field(m.field) if m.HasField("field") else np.zeros(0)
    return EnergyMap(
        m.name, values, m.update_time.ToJsonString(), m.reading_count, m.sequence,
        m.observed_count, m,
    )  # fmt: skip


@dataclass(frozen=True)
class SiteEvent:
    site: str
    event: str  # threshold.crossed, threshold.cleared, drift.exceeded, drift.recovered
    rule: int  # its index in the site's configuration
    sequence: int  # the map's, when the rule fired
    time: datetime.datetime | None
    details: dict[str, Any]
    raw: telemetry_pb2.SiteEvent = dataclasses.field(repr=False)


def site_event_from(e: telemetry_pb2.SiteEvent) -> SiteEvent:
    from google.protobuf import json_format

    return SiteEvent(
        e.site, e.event, e.rule, e.sequence, _when(e.time, e.HasField("time")),
        json_format.MessageToDict(e.details), e,
    )  # fmt: skip


@dataclass(frozen=True)
class Rejection:
    position: int  # of the reading in the call, from 0
    field: str
    reason: str


@dataclass(frozen=True)
class Published:
    accepted_count: int
    rejected_count: int
    duplicate_count: int  # accepted, stored already (a retry)
    rejections: tuple[Rejection, ...]  # the first 100
    last_sequence: int  # a map with sequence >= this holds every accepted reading of the call
    raw: telemetry_pb2.PublishResponse = dataclasses.field(repr=False)


def published_from(r: telemetry_pb2.PublishResponse) -> Published:
    return Published(
        r.accepted_count, r.rejected_count, r.duplicate_count,
        tuple(Rejection(x.position, x.field, x.reason) for x in r.rejections), r.last_sequence, r,
    )  # fmt: skip


def _when(t: Any, present: bool) -> datetime.datetime | None:
    return t.ToDatetime(tzinfo=datetime.timezone.utc) if present else None


@dataclass(frozen=True)
class ApiKey:
    """An API key's record (never its secret)."""

    name: str  # keys/{key_id}
    prefix: str  # idf_<key_id>: how the secret starts
    principal: str
    tenant: str
    roles: list[str]
    create_time: datetime.datetime | None
    expire_time: datetime.datetime | None  # None: never
    revoke_time: datetime.datetime | None  # None: not revoked
    description: str
    accounts: list[str]  # ledger accounts its calls act and pay for (first: the default)
    raw: keys_pb2.ApiKey = dataclasses.field(repr=False)


def api_key_from(m: keys_pb2.ApiKey) -> ApiKey:
    return ApiKey(
        m.name,
        m.prefix,
        m.principal,
        m.tenant,
        list(m.roles),
        _when(m.create_time, m.HasField("create_time")),
        _when(m.expire_time, m.HasField("expire_time")),
        _when(m.revoke_time, m.HasField("revoke_time")),
        m.description,
        list(m.accounts),
        m,
    )


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    secret: str = dataclasses.field(repr=False)  # shown once: keep it safe
    raw: keys_pb2.CreateApiKeyResponse = dataclasses.field(repr=False)


def created_api_key_from(r: keys_pb2.CreateApiKeyResponse) -> CreatedApiKey:
    return CreatedApiKey(api_key_from(r.api_key), r.secret, r)


@dataclass(frozen=True)
class ApiKeyPage:
    api_keys: list[ApiKey]
    next_page_token: str  # "" on the last page
    raw: keys_pb2.ListApiKeysResponse = dataclasses.field(repr=False)


def api_key_page_from(r: keys_pb2.ListApiKeysResponse) -> ApiKeyPage:
    return ApiKeyPage([api_key_from(k) for k in r.api_keys], r.next_page_token, r)


@dataclass(frozen=True)
class Token:
    """A JWT the service issued for the caller's API key."""

    access_token: str = dataclasses.field(repr=False)
    token_type: str  # "Bearer"
    expires_in: int  # seconds
    raw: keys_pb2.IssueTokenResponse = dataclasses.field(repr=False)


def token_from(r: keys_pb2.IssueTokenResponse) -> Token:
    return Token(r.access_token, r.token_type, r.expires_in, r)
