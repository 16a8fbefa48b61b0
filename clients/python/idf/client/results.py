"""Decoded results of the SDK's calls: plain dataclasses with numpy arrays for fields, names for
enums (``"CEU"``, ``"chaotic"``), and the response message itself in ``raw`` for anything the
dataclass leaves out. Both twins (`Client`, `AsyncClient`) decode with these functions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message

from idf.client._protocol import Usage, usage_from
from idf.client.fields import from_field
from idf.v1 import diffusion_pb2, market_pb2, predict_pb2, telemetry_pb2


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
    field: np.ndarray
    update_time: str  # RFC 3339
    reading_count: int
    raw: telemetry_pb2.EnergyMap = dataclasses.field(repr=False)


def energy_map_from(m: telemetry_pb2.EnergyMap) -> EnergyMap:
    values = from_field(m.field) if m.HasField("field") else np.zeros(0)
    return EnergyMap(m.name, values, m.update_time.ToJsonString(), m.reading_count, m)


@dataclass(frozen=True)
class Published:
    accepted_count: int
    rejected_count: int
    raw: telemetry_pb2.PublishResponse = dataclasses.field(repr=False)


def published_from(r: telemetry_pb2.PublishResponse) -> Published:
    return Published(r.accepted_count, r.rejected_count, r)
