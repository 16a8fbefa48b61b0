"""Market operations: the AMM rules of `idf.engine.market.amm` applied to the ledger of
`idf.store.ledger`, one ledger transaction each, idempotent by (account, operation, request id)
with a fingerprint of the parameters: a retry returns the first result verbatim (results are
plain dicts stored with the journal entry); the same key with other parameters raises
`IdempotencyKeyReused`."""

from __future__ import annotations

import re

from idf.engine.market import amm
from idf.store.ledger import ISSUANCE, SYSTEM, Ledger, Tx, fingerprint

DEFAULT_POOL = "market/pools/ceu-pft"
USER_ACCOUNT = re.compile(r"^market/accounts/[a-z0-9][a-z0-9._-]{0,62}$")  # never a system account
LOCKED = SYSTEM + "locked"
TOKENS = ("CEU", "PFT")


def is_user_account(name: str | None) -> bool:
    return bool(name) and USER_ACCOUNT.match(name) is not None  # type: ignore[arg-type]


class MarketError(Exception):
    """A market rule refuses the operation (slippage, missing pool...)."""

    def __init__(self, reason: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.reason, self.field = reason, field


def reserves(tx: Tx, pool: str, fee_bps: int) -> amm.Reserves:
    return amm.Reserves(tx.balance(pool, "CEU"), tx.balance(pool, "PFT"), -tx.balance(ISSUANCE + ":" + pool, "LP"), fee_bps)


def _pool_dict(r: amm.Reserves, pool: str) -> dict:
    return {"name": pool, "reserve_ceu": r.ceu, "reserve_pft": r.pft, "total_shares": r.shares, "fee_bps": r.fee_bps}


def _fee(ledger: Ledger, pool: str) -> int:
    fee = ledger.pool_fee(pool)
    if fee is None:
        raise MarketError("POOL_NOT_FOUND", f"{pool} does not exist", "pool")
    return fee


def get_pool(ledger: Ledger, pool: str) -> dict:
    fee = _fee(ledger, pool)
    with ledger.transaction() as tx:
        return _pool_dict(reserves(tx, pool, fee), pool)


def quote(ledger: Ledger, pool: str, token_in: str, *, amount_in: int = 0, amount_out: int = 0) -> dict:
    fee = _fee(ledger, pool)
    with ledger.transaction() as tx:
        r = reserves(tx, pool, fee)
    r_in, r_out = r.of(token_in)
    if amount_in:
        amount_out = amm.amount_out(amount_in, r_in, r_out, fee)
    else:
        amount_in = amm.amount_in(amount_out, r_in, r_out, fee)
    return {"amount_in": amount_in, "amount_out": amount_out, "fee": amount_in * fee // amm.BPS,
            "price_impact": amm.price_impact(amount_in, amount_out, r_in, r_out)}


def swap(ledger: Ledger, pool: str, account: str, token_in: str, *, amount_in: int = 0, amount_out: int = 0,
         min_amount_out: int = 0, max_amount_in: int = 0, request_id: str) -> dict:
    fee = _fee(ledger, pool)
    token_out = "PFT" if token_in == "CEU" else "CEU"
    key = ("swap", request_id, fingerprint({"pool": pool, "token_in": token_in, "amount_in": amount_in, "amount_out": amount_out,
                                            "min_amount_out": min_amount_out, "max_amount_in": max_amount_in}))
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        r = reserves(tx, pool, fee)
        r_in, r_out = r.of(token_in)
        if amount_in:
            amount_out = amm.amount_out(amount_in, r_in, r_out, fee)
            if amount_out < min_amount_out:
                raise MarketError("SLIPPAGE", f"output {amount_out} is below min_amount_out {min_amount_out}", "min_amount_out")
            if amount_out == 0:
                raise MarketError("INSUFFICIENT_OUTPUT", "the input is too small to buy anything", "amount_in")
        else:
            amount_in = amm.amount_in(amount_out, r_in, r_out, fee)
            if amount_in > max_amount_in:
                raise MarketError("SLIPPAGE", f"input {amount_in} exceeds max_amount_in {max_amount_in}", "max_amount_in")
        if not amm.k_holds(r_in, r_out, amount_in, amount_out, fee):  # defence in depth: never reached by the formulas
            raise MarketError("K", "the swap would decrease the pool's invariant")
        after = amm.Reserves(*(
            (r.ceu + amount_in, r.pft - amount_out) if token_in == "CEU" else (r.ceu - amount_out, r.pft + amount_in)
        ), r.shares, fee)
        result = {"amount_in": amount_in, "amount_out": amount_out, "pool": _pool_dict(after, pool)}
        tx.post("swap", [(account, token_in, -amount_in), (pool, token_in, amount_in),
                         (pool, token_out, -amount_out), (account, token_out, amount_out)],
                request_id=request_id, reference=pool, result=result, account=account, operation=key[0], fingerprint=key[2])
        return tx.prior(account, *key)  # type: ignore[return-value]


def add_liquidity(ledger: Ledger, pool: str, account: str, ceu_desired: int, pft_desired: int,
                  ceu_min: int, pft_min: int, *, request_id: str) -> dict:
    fee = _fee(ledger, pool)
    key = ("add_liquidity", request_id, fingerprint({"pool": pool, "ceu_desired": ceu_desired, "pft_desired": pft_desired,
                                                     "ceu_min": ceu_min, "pft_min": pft_min}))
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        r = reserves(tx, pool, fee)
        ceu, pft = amm.optimal_deposit(r, ceu_desired, pft_desired, ceu_min, pft_min)
        shares = amm.liquidity_minted(r, ceu, pft)
        issuance = ISSUANCE + ":" + pool
        postings = [(account, "CEU", -ceu), (pool, "CEU", ceu), (account, "PFT", -pft), (pool, "PFT", pft),
                    (issuance, "LP", -shares), (account, "LP", shares)]
        locked = 0
        if r.shares == 0:
            locked = amm.MINIMUM_LIQUIDITY
            postings += [(issuance, "LP", -locked), (LOCKED, "LP", locked)]
        after = amm.Reserves(r.ceu + ceu, r.pft + pft, r.shares + shares + locked, fee)
        tx.post("add_liquidity", postings, request_id=request_id, reference=pool, account=account, operation=key[0], fingerprint=key[2],
                result={"amount_ceu": ceu, "amount_pft": pft, "shares": shares, "pool": _pool_dict(after, pool)})
        return tx.prior(account, *key)  # type: ignore[return-value]


def remove_liquidity(ledger: Ledger, pool: str, account: str, shares: int, ceu_min: int, pft_min: int, *, request_id: str) -> dict:
    fee = _fee(ledger, pool)
    key = ("remove_liquidity", request_id, fingerprint({"pool": pool, "shares": shares, "ceu_min": ceu_min, "pft_min": pft_min}))
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        r = reserves(tx, pool, fee)
        if r.shares == 0:
            raise MarketError("NO_LIQUIDITY", f"{pool} has no liquidity", "pool")
        ceu, pft = amm.burned(r, shares)
        if ceu < ceu_min or pft < pft_min:
            raise MarketError("SLIPPAGE", f"would return {ceu} CEU / {pft} PFT, below the minima {ceu_min} / {pft_min}",
                              "amount_ceu_min" if ceu < ceu_min else "amount_pft_min")
        after = amm.Reserves(r.ceu - ceu, r.pft - pft, r.shares - shares, fee)
        tx.post("remove_liquidity", [(account, "LP", -shares), (ISSUANCE + ":" + pool, "LP", shares),
                                     (pool, "CEU", -ceu), (account, "CEU", ceu), (pool, "PFT", -pft), (account, "PFT", pft)],
                request_id=request_id, reference=pool, account=account, operation=key[0], fingerprint=key[2],
                result={"amount_ceu": ceu, "amount_pft": pft, "pool": _pool_dict(after, pool)})
        return tx.prior(account, *key)  # type: ignore[return-value]


def mint(ledger: Ledger, account: str, token: str, amount: int, *, request_id: str, reference: str = "") -> dict:
    if amount <= 0:
        raise MarketError("INVALID_AMOUNT", f"amount must be > 0, got {amount}", "amount.amount")
    key = ("mint", request_id, fingerprint({"token": token, "amount": amount, "reference": reference}))
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        balance = tx.balance(account, token) + amount
        tx.post("mint", [(ISSUANCE, token, -amount), (account, token, amount)], request_id=request_id, account=account,
                operation=key[0], fingerprint=key[2], reference=reference, result={"balance": {"token": token, "amount": balance}})
        return tx.prior(account, *key)  # type: ignore[return-value]
