"""Market operations on the ledger: the rules of `idf.engine.market.operations` (over the AMM of
`idf.engine.market.amm`) applied to the books of `idf.store.ledger`, one ledger transaction each,
idempotent by (account, operation, request id) with a fingerprint of the parameters: a retry
returns the first result verbatim (results are plain dicts stored with the journal entry); the
same key with other parameters raises `IdempotencyKeyReused`."""

from __future__ import annotations

from idf.engine.market import amm
from idf.engine.market import operations as rules
from idf.engine.market.operations import TOKENS, MarketError, is_user_account, other
from idf.store.ledger import ISSUANCE, SYSTEM, Ledger, Tx, fingerprint

__all__ = [
    "DEFAULT_POOL",
    "LOCKED",
    "TOKENS",
    "MarketError",
    "is_user_account",
    "get_pool",
    "quote",
    "swap",
    "add_liquidity",
    "remove_liquidity",
    "mint",
]

DEFAULT_POOL = "market/pools/ceu-pft"
LOCKED = SYSTEM + "locked"


def reserves(tx: Tx, pool: str, fee_bps: int) -> amm.Reserves:
    return amm.Reserves(
        tx.balance(pool, "CEU"),
        tx.balance(pool, "PFT"),
        -tx.balance(ISSUANCE + ":" + pool, "LP"),
        fee_bps,
    )


def _pool_dict(r: amm.Reserves, pool: str) -> dict:
    return {
        "name": pool,
        "reserve_ceu": r.ceu,
        "reserve_pft": r.pft,
        "total_shares": r.shares,
        "fee_bps": r.fee_bps,
    }


def _fee(ledger: Ledger, pool: str) -> int:
    fee = ledger.pool_fee(pool)
    if fee is None:
        raise MarketError("POOL_NOT_FOUND", f"{pool} does not exist", "pool")
    return fee


def get_pool(ledger: Ledger, pool: str) -> dict:
    fee = _fee(ledger, pool)
    with ledger.transaction() as tx:
        return _pool_dict(reserves(tx, pool, fee), pool)


def quote(
    ledger: Ledger, pool: str, token_in: str, *, amount_in: int = 0, amount_out: int = 0
) -> dict:
    fee = _fee(ledger, pool)
    with ledger.transaction() as tx:
        r = reserves(tx, pool, fee)
    return rules.quote(r, token_in, amount_in=amount_in, amount_out=amount_out)


def swap(
    ledger: Ledger,
    pool: str,
    account: str,
    token_in: str,
    *,
    amount_in: int = 0,
    amount_out: int = 0,
    min_amount_out: int = 0,
    max_amount_in: int = 0,
    request_id: str,
) -> dict:
    fee = _fee(ledger, pool)
    token_out = other(token_in)
    key = (
        "swap",
        request_id,
        fingerprint(
            {
                "pool": pool,
                "token_in": token_in,
                "amount_in": amount_in,
                "amount_out": amount_out,
                "min_amount_out": min_amount_out,
                "max_amount_in": max_amount_in,
            }
        ),
    )
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        t = rules.swap(
            reserves(tx, pool, fee),
            token_in,
            amount_in=amount_in,
            amount_out=amount_out,
            min_amount_out=min_amount_out,
            max_amount_in=max_amount_in,
        )
        amount_in, amount_out = t.amount_in, t.amount_out
        result = {
            "amount_in": amount_in,
            "amount_out": amount_out,
            "pool": _pool_dict(t.after, pool),
        }
        tx.post(
            "swap",
            [
                (account, token_in, -amount_in),
                (pool, token_in, amount_in),
                (pool, token_out, -amount_out),
                (account, token_out, amount_out),
            ],
            request_id=request_id,
            reference=pool,
            result=result,
            account=account,
            operation=key[0],
            fingerprint=key[2],
        )
        return tx.prior(account, *key)  # type: ignore[return-value]


def add_liquidity(
    ledger: Ledger,
    pool: str,
    account: str,
    ceu_desired: int,
    pft_desired: int,
    ceu_min: int,
    pft_min: int,
    *,
    request_id: str,
) -> dict:
    fee = _fee(ledger, pool)
    key = (
        "add_liquidity",
        request_id,
        fingerprint(
            {
                "pool": pool,
                "ceu_desired": ceu_desired,
                "pft_desired": pft_desired,
                "ceu_min": ceu_min,
                "pft_min": pft_min,
            }
        ),
    )
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        d = rules.deposit(reserves(tx, pool, fee), ceu_desired, pft_desired, ceu_min, pft_min)
        ceu, pft, shares = d.ceu, d.pft, d.shares
        issuance = ISSUANCE + ":" + pool
        postings = [
            (account, "CEU", -ceu),
            (pool, "CEU", ceu),
            (account, "PFT", -pft),
            (pool, "PFT", pft),
            (issuance, "LP", -shares),
            (account, "LP", shares),
        ]
        if d.locked:
            postings += [(issuance, "LP", -d.locked), (LOCKED, "LP", d.locked)]
        tx.post(
            "add_liquidity",
            postings,
            request_id=request_id,
            reference=pool,
            account=account,
            operation=key[0],
            fingerprint=key[2],
            result={
                "amount_ceu": ceu,
                "amount_pft": pft,
                "shares": shares,
                "pool": _pool_dict(d.after, pool),
            },
        )
        return tx.prior(account, *key)  # type: ignore[return-value]


def remove_liquidity(
    ledger: Ledger,
    pool: str,
    account: str,
    shares: int,
    ceu_min: int,
    pft_min: int,
    *,
    request_id: str,
) -> dict:
    fee = _fee(ledger, pool)
    key = (
        "remove_liquidity",
        request_id,
        fingerprint({"pool": pool, "shares": shares, "ceu_min": ceu_min, "pft_min": pft_min}),
    )
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        w = rules.withdraw(reserves(tx, pool, fee), shares, ceu_min, pft_min)
        ceu, pft = w.ceu, w.pft
        tx.post(
            "remove_liquidity",
            [
                (account, "LP", -shares),
                (ISSUANCE + ":" + pool, "LP", shares),
                (pool, "CEU", -ceu),
                (account, "CEU", ceu),
                (pool, "PFT", -pft),
                (account, "PFT", pft),
            ],
            request_id=request_id,
            reference=pool,
            account=account,
            operation=key[0],
            fingerprint=key[2],
            result={"amount_ceu": ceu, "amount_pft": pft, "pool": _pool_dict(w.after, pool)},
        )
        return tx.prior(account, *key)  # type: ignore[return-value]


def mint(
    ledger: Ledger, account: str, token: str, amount: int, *, request_id: str, reference: str = ""
) -> dict:
    if amount <= 0:
        raise MarketError("INVALID_AMOUNT", f"amount must be > 0, got {amount}", "amount.amount")
    key = (
        "mint",
        request_id,
        fingerprint({"token": token, "amount": amount, "reference": reference}),
    )
    with ledger.transaction() as tx:
        if (prior := tx.prior(account, *key)) is not None:
            return prior
        balance = tx.balance(account, token) + amount
        tx.post(
            "mint",
            [(ISSUANCE, token, -amount), (account, token, amount)],
            request_id=request_id,
            account=account,
            operation=key[0],
            fingerprint=key[2],
            reference=reference,
            result={"balance": {"token": token, "amount": balance}},
        )
        return tx.prior(account, *key)  # type: ignore[return-value]
