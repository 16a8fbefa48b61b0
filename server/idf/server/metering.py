"""CEU metering and PFT rewards on the market ledger.

Price schedule (published in docs/market.md): a billable call costs
    ceil(site_updates * ceu_per_million_site_updates / 10^6)  CEU base units, at least 1.
Before work the estimate is moved from the caller's account to escrow (an account without
enough CEU gets FAILED_PRECONDITION and no work starts); afterwards the measured work is paid to
the treasury and the rest refunded. A call refused before work pays nothing; a call cancelled
mid-way (deadline, client, shutdown) is refunded in full — the engine stops at its next step,
but the async cancellation does not wait for it to report how far it got. The caller names its account in the `x-idf-account` metadata.

Rewards: a PASS proof mints PFT to the requester (`x-idf-account`), referencing the proof:
    reward = base(policy) + floor(base(policy) * max(0, 1 - nrmse / nrmse_threshold))
for policies with an nrmse check, base(policy) alone otherwise. The mint's idempotency key is
the proof id, so one proof never pays twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc

from idf.server import market
from idf.server.errors import ApiError
from idf.store.ledger import SYSTEM, InsufficientBalance, Ledger

ESCROW = SYSTEM + "escrow"
TREASURY = SYSTEM + "treasury"
ACCOUNT_HEADER = "x-idf-account"
REWARD_BASE = {"forecast-default": 1000, "reconstruction-default": 2000, "conservation-strict": 500, "conservation-float32": 250}


def price(site_updates: int, per_million: int) -> int:
    return max(1, -(-site_updates * per_million // 1_000_000))


def caller_account(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == ACCOUNT_HEADER:
            return value
    return None


@dataclass
class Meter:
    """The charge of one call; `charged` is set when it settles."""

    account: str
    reserved: int
    charged: int = 0
    settled: bool = False


class Metering:
    def __init__(self, ledger: Ledger, per_million: int, enabled: bool) -> None:
        self.ledger = ledger
        self.per_million = per_million
        self.enabled = enabled

    def reserve(self, account: str | None, estimated_site_updates: int) -> Meter | None:
        if not self.enabled:
            return None
        if not market.is_user_account(account):
            raise ApiError(grpc.StatusCode.UNAUTHENTICATED, f"metered calls name the paying account in the {ACCOUNT_HEADER} metadata",
                           reason="NO_ACCOUNT")
        amount = price(estimated_site_updates, self.per_million)
        try:
            with self.ledger.transaction() as tx:
                tx.post("reserve", [(account, "CEU", -amount), (ESCROW, "CEU", amount)], request_id=None, reference="metering")
        except InsufficientBalance as e:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"{account} holds {e.available} CEU; this call needs up to {amount}", reason="INSUFFICIENT_BALANCE",
                           violations=[("metadata." + ACCOUNT_HEADER, "not enough CEU for the reservation")]) from None
        return Meter(account, amount)

    def settle(self, meter: Meter | None, site_updates: int) -> int:
        if meter is None or meter.settled:
            return 0 if meter is None else meter.charged
        meter.settled = True
        charge = min(meter.reserved, price(site_updates, self.per_million) if site_updates else 0)
        with self.ledger.transaction() as tx:
            tx.post("charge", [(ESCROW, "CEU", -meter.reserved), (TREASURY, "CEU", charge), (meter.account, "CEU", meter.reserved - charge)],
                    request_id=f"settle:{uuid.uuid4().hex}", reference="metering")
        meter.charged = charge
        return charge


def reward(ledger: Ledger, account: str | None, proof_id: str, policy: str, metrics: dict[str, float], nrmse_threshold: float | None) -> int:
    """Mint the PFT reward of a PASS proof (idempotent per proof); returns the amount."""
    if not market.is_user_account(account):
        return 0
    base = REWARD_BASE.get(policy, 0)
    bonus = 0
    if nrmse_threshold and "nrmse" in metrics:
        bonus = int(base * max(0.0, 1 - metrics["nrmse"] / nrmse_threshold))
    amount = base + bonus
    if amount > 0:
        market.mint(ledger, account, "PFT", amount, request_id=f"reward:{proof_id}", reference=f"proofs/{proof_id}")
    return amount
