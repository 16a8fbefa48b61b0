"""Constant-product AMM arithmetic after Uniswap v2's published rules (whitepaper and core/
periphery semantics), in integers: every division floors, always in the pool's favour.

    out  = floor(in * (F - fee) * R_out / (R_in * F + in * (F - fee)))          (exact in)
    in   = floor(R_in * out * F / ((R_out - out) * (F - fee))) + 1              (exact out)
    K    : (R_in' * F - in * fee) * R_out' * F >= R_in * R_out * F^2            (after a swap)
    LP   : first deposit sqrt(a0 * a1) - MINIMUM_LIQUIDITY (that much locked forever),
           then min(a0 * S / R0, a1 * S / R1);   burn: s * R / S of each reserve
with F = 10_000 basis points and fee in basis points (30 = 0.3%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from idf.engine.errors import ParameterError

BPS = 10_000
MINIMUM_LIQUIDITY = 1_000


class AmmError(ValueError):
    """A rule of the pool refuses the operation; `reason` is stable for programs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Reserves:
    ceu: int
    pft: int
    shares: int  # total LP supply, the locked minimum included
    fee_bps: int = 30

    def of(self, token_in: str) -> tuple[int, int]:
        """(reserve of token_in, reserve of the other token)."""
        return (self.ceu, self.pft) if token_in == "CEU" else (self.pft, self.ceu)


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ParameterError(name, f"must be > 0, got {value}")


def amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    _positive("amount_in", amount_in)
    if reserve_in <= 0 or reserve_out <= 0:
        raise AmmError("NO_LIQUIDITY", "the pool has no liquidity")
    with_fee = amount_in * (BPS - fee_bps)
    return with_fee * reserve_out // (reserve_in * BPS + with_fee)


def amount_in(amount_out_: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    _positive("amount_out", amount_out_)
    if reserve_in <= 0 or reserve_out <= 0:
        raise AmmError("NO_LIQUIDITY", "the pool has no liquidity")
    if amount_out_ >= reserve_out:
        raise AmmError(
            "INSUFFICIENT_LIQUIDITY", f"cannot take {amount_out_} out of a reserve of {reserve_out}"
        )
    return reserve_in * amount_out_ * BPS // ((reserve_out - amount_out_) * (BPS - fee_bps)) + 1


def k_holds(reserve_in: int, reserve_out: int, paid_in: int, taken_out: int, fee_bps: int) -> bool:
    """Uniswap v2's K check on the balances after a swap, the fee charged on the input."""
    new_in, new_out = reserve_in + paid_in, reserve_out - taken_out
    if new_out <= 0:
        return False
    return (new_in * BPS - paid_in * fee_bps) * (
        new_out * BPS
    ) >= reserve_in * reserve_out * BPS * BPS


def price_impact(amount_in_: int, amount_out_: int, reserve_in: int, reserve_out: int) -> float:
    """1 - execution price / marginal price (in [0, 1]; includes the fee)."""
    if amount_in_ == 0:
        return 0.0
    return 1 - (amount_out_ / amount_in_) / (reserve_out / reserve_in)


def liquidity_minted(pool: Reserves, amount_ceu: int, amount_pft: int) -> int:
    _positive("amount_ceu", amount_ceu)
    _positive("amount_pft", amount_pft)
    if pool.shares == 0:
        liquidity = math.isqrt(amount_ceu * amount_pft) - MINIMUM_LIQUIDITY
    else:
        liquidity = min(amount_ceu * pool.shares // pool.ceu, amount_pft * pool.shares // pool.pft)
    if liquidity <= 0:
        raise AmmError(
            "INSUFFICIENT_LIQUIDITY_MINTED", "the deposit is too small to mint any share"
        )
    return liquidity


def optimal_deposit(
    pool: Reserves, ceu_desired: int, pft_desired: int, ceu_min: int, pft_min: int
) -> tuple[int, int]:
    """The router's rule: deposit in the pool's current ratio, within the desired maxima and
    above the minima."""
    if pool.shares == 0:
        return ceu_desired, pft_desired
    pft_optimal = ceu_desired * pool.pft // pool.ceu
    if pft_optimal <= pft_desired:
        if pft_optimal < pft_min:
            raise AmmError(
                "SLIPPAGE", f"would deposit {pft_optimal} PFT, below the minimum {pft_min}"
            )
        return ceu_desired, pft_optimal
    ceu_optimal = pft_desired * pool.ceu // pool.pft
    if ceu_optimal < ceu_min:
        raise AmmError("SLIPPAGE", f"would deposit {ceu_optimal} CEU, below the minimum {ceu_min}")
    return ceu_optimal, pft_desired


def burned(pool: Reserves, shares: int) -> tuple[int, int]:
    _positive("shares", shares)
    ceu, pft = shares * pool.ceu // pool.shares, shares * pool.pft // pool.shares
    if ceu == 0 or pft == 0:
        raise AmmError("INSUFFICIENT_LIQUIDITY_BURNED", "too few shares to withdraw anything")
    return ceu, pft
