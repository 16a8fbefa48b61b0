"""The market's operations as rules over a pool's reserves, apart from any storage: what a swap,
a deposit or a withdrawal moves and what the pool holds after (`swap`, `deposit`, `withdraw`),
the slippage and minimum-output refusals (`MarketError`), who may hold a user account
(`is_user_account`), and the price of metered work and the cap on proof rewards (`price`,
`reward_budget`; docs/market.md). `idf.server.market` applies them to the ledger, one
transaction each; the integer AMM formulas are `amm`'s.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from idf.engine.market import amm

TOKENS = ("CEU", "PFT")
USER_ACCOUNT = re.compile(
    r"^market/accounts/[a-z0-9][a-z0-9._-]{0,62}$"
)  # never a system account ("-" prefix)


def is_user_account(name: str | None) -> bool:
    return name is not None and USER_ACCOUNT.match(name) is not None


class MarketError(Exception):
    """A market rule refuses the operation (slippage, missing pool...); `field` names the
    request field at fault."""

    def __init__(self, reason: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.reason, self.field = reason, field


def other(token: str) -> str:
    return "PFT" if token == "CEU" else "CEU"


@dataclass(frozen=True)
class Trade:
    amount_in: int
    amount_out: int
    after: amm.Reserves


@dataclass(frozen=True)
class Deposit:
    ceu: int
    pft: int
    shares: int  # minted to the depositor
    locked: int  # minted to nobody: MINIMUM_LIQUIDITY on the pool's first deposit, else 0
    after: amm.Reserves


@dataclass(frozen=True)
class Withdrawal:
    ceu: int
    pft: int
    after: amm.Reserves


def quote(
    r: amm.Reserves, token_in: str, *, amount_in: int = 0, amount_out: int = 0
) -> dict[str, Any]:
    """The exact-in or exact-out price of a swap now, its fee and price impact (no slippage check)."""
    r_in, r_out = r.of(token_in)
    if amount_in:
        amount_out = amm.amount_out(amount_in, r_in, r_out, r.fee_bps)
    else:
        amount_in = amm.amount_in(amount_out, r_in, r_out, r.fee_bps)
    return {
        "amount_in": amount_in,
        "amount_out": amount_out,
        "fee": amount_in * r.fee_bps // amm.BPS,
        "price_impact": amm.price_impact(amount_in, amount_out, r_in, r_out),
    }


def swap(
    r: amm.Reserves,
    token_in: str,
    *,
    amount_in: int = 0,
    amount_out: int = 0,
    min_amount_out: int = 0,
    max_amount_in: int = 0,
) -> Trade:
    """An exact-in swap (`amount_in`, at least `min_amount_out` out) or an exact-out one
    (`amount_out`, at most `max_amount_in` in)."""
    r_in, r_out = r.of(token_in)
    if amount_in:
        amount_out = amm.amount_out(amount_in, r_in, r_out, r.fee_bps)
        if amount_out < min_amount_out:
            raise MarketError(
                "SLIPPAGE",
                f"output {amount_out} is below min_amount_out {min_amount_out}",
                "min_amount_out",
            )
        if amount_out == 0:
            raise MarketError(
                "INSUFFICIENT_OUTPUT", "the input is too small to buy anything", "amount_in"
            )
    else:
        amount_in = amm.amount_in(amount_out, r_in, r_out, r.fee_bps)
        if amount_in > max_amount_in:
            raise MarketError(
                "SLIPPAGE",
                f"input {amount_in} exceeds max_amount_in {max_amount_in}",
                "max_amount_in",
            )
    if not amm.k_holds(
        r_in, r_out, amount_in, amount_out, r.fee_bps
    ):  # defence in depth: never reached by the formulas
        raise MarketError("K", "the swap would decrease the pool's invariant")
    ceu, pft = (
        (r.ceu + amount_in, r.pft - amount_out)
        if token_in == "CEU"
        else (r.ceu - amount_out, r.pft + amount_in)
    )
    return Trade(amount_in, amount_out, amm.Reserves(ceu, pft, r.shares, r.fee_bps))


def deposit(
    r: amm.Reserves, ceu_desired: int, pft_desired: int, ceu_min: int, pft_min: int
) -> Deposit:
    """Liquidity added at the pool's ratio (Uniswap v2's rules, `amm.optimal_deposit`)."""
    ceu, pft = amm.optimal_deposit(r, ceu_desired, pft_desired, ceu_min, pft_min)
    shares = amm.liquidity_minted(r, ceu, pft)
    locked = amm.MINIMUM_LIQUIDITY if r.shares == 0 else 0
    return Deposit(
        ceu,
        pft,
        shares,
        locked,
        amm.Reserves(r.ceu + ceu, r.pft + pft, r.shares + shares + locked, r.fee_bps),
    )


def withdraw(r: amm.Reserves, shares: int, ceu_min: int, pft_min: int) -> Withdrawal:
    """Liquidity removed: `shares` burned for their part of both reserves."""
    if r.shares == 0:
        raise MarketError("NO_LIQUIDITY", "the pool has no liquidity", "pool")
    ceu, pft = amm.burned(r, shares)
    if ceu < ceu_min or pft < pft_min:
        raise MarketError(
            "SLIPPAGE",
            f"would return {ceu} CEU / {pft} PFT, below the minima {ceu_min} / {pft_min}",
            "amount_ceu_min" if ceu < ceu_min else "amount_pft_min",
        )
    return Withdrawal(
        ceu, pft, amm.Reserves(r.ceu - ceu, r.pft - pft, r.shares - shares, r.fee_bps)
    )


def price(site_updates: int, per_million: int) -> int:
    """CEU base units for `site_updates` of work: ceil(site_updates x per_million / 10^6), at least 1."""
    return max(1, -(-site_updates * per_million // 1_000_000))


def reward_budget(charged: int, rewarded: int, pft_per_ceu: float) -> int:
    """What rewards for the outputs of one call may still pay: floor(charged x pft_per_ceu) in
    all, less what they were paid already (<= 0: the call's cap is reached)."""
    return math.floor(Fraction(pft_per_ceu) * int(charged)) - int(rewarded)
