"""CEU metering, escrow recovery and PFT rewards on the market ledger.

Price schedule (published in docs/market.md; the rule is `idf.engine.market.operations.price`):
a billable call costs  ceil(site_updates * ceu_per_million_site_updates / 10^6)  CEU base units, at least 1.
Before work the estimate is moved from the caller's account to escrow (an account without
enough CEU gets FAILED_PRECONDITION and no work starts); afterwards the measured work is paid to
the treasury and the rest refunded. A call refused before work pays nothing; a call cancelled
mid-way (deadline, client, shutdown) is refunded in full — the engine stops at its next step,
but the async cancellation does not wait for it to report how far it got. The caller names its
account in the `x-idf-account` metadata.

Escrow: every reservation is a row of `reservations` (account, amount, rpc, node, created,
expires, state open/settled/refunded) written in the transaction that moves the CEU to escrow;
the settlement (charge and refund of the rest) or a refund closes it in the transaction that
moves the CEU out. So  escrow balance == sum of open reservations  after every commit. At
start-up the open reservations of this node (left by a previous incarnation that died) and the
expired ones of every node are refunded; a sweeper refunds expired ones periodically
(`start_sweeper`). A call still running when its reservation was refunded gets its work free.

Billed outputs: settlement records the digest (`idf.client.proofs.array_digest`) of every array
the call returned, with the paying account, the RPC, the charge and the time, in the same
transaction as the charge. Rewards are paid against these records only (`reward`; the rule and
the attacks it stops are in docs/market.md): what a proof earns is its policy's
(`idf.engine.proofs.policies.Policy.reward`), capped per call by
`idf.engine.market.operations.reward_budget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import numpy as np

from idf.client.proofs import array_digest
from idf.engine.market.operations import is_user_account, price, reward_budget
from idf.server import auth
from idf.server.errors import ApiError
from idf.store.ledger import (
    ESCROW,
    ISSUANCE,
    TREASURY,
    InsufficientBalance,
    Ledger,
    Tx,
    fingerprint,
    now_text,
)

__all__ = [
    "ESCROW",
    "TREASURY",
    "ACCOUNT_HEADER",
    "Meter",
    "Metering",
    "Sweeper",
    "caller_account",
    "price",
    "reward",
    "start_sweeper",
]

log = logging.getLogger("idf.metering")
ACCOUNT_HEADER = "x-idf-account"


def caller_account(context: grpc.aio.ServicerContext) -> str | None:
    """The account the call pays and acts for: the one `x-idf-account` names if the caller may
    act for it (`idf.server.auth.acting_account`: PERMISSION_DENIED otherwise), else the
    caller's default account (None: none)."""
    named = next((v for k, v in context.invocation_metadata() or () if k == ACCOUNT_HEADER), None)
    return auth.acting_account(named, "metadata." + ACCOUNT_HEADER)


@dataclass
class Meter:
    """The charge of one call; `charged` is set when it settles."""

    account: str
    reserved: int
    id: str = ""
    rpc: str = ""
    charged: int = 0
    settled: bool = False


class Metering:
    def __init__(
        self, ledger: Ledger, per_million: int, enabled: bool, *, node: str = "", ttl: float = 600.0
    ) -> None:
        self.ledger = ledger
        self.per_million = per_million
        self.enabled = enabled
        self.node = node or socket.gethostname()
        self.ttl = ttl

    def reserve(
        self, account: str | None, estimated_site_updates: int, rpc: str = ""
    ) -> Meter | None:
        if not self.enabled:
            return None
        if not is_user_account(account):
            raise ApiError(
                grpc.StatusCode.UNAUTHENTICATED,
                f"metered calls name the paying account in the {ACCOUNT_HEADER} metadata",
                reason="NO_ACCOUNT",
            )
        amount = price(estimated_site_updates, self.per_million)
        rid = uuid.uuid4().hex
        now = time.time()
        try:
            with self.ledger.transaction() as tx:
                tx.post(
                    "reserve",
                    [(account, "CEU", -amount), (ESCROW, "CEU", amount)],
                    request_id=f"reservation:{rid}",
                    account=account,
                    reference=f"reservations/{rid}",
                )  # type: ignore[arg-type]
                tx.db.run(
                    "INSERT INTO reservations (id, account, amount, rpc, node, created, expires, state)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
                    (rid, account, amount, rpc, self.node, now, now + self.ttl),
                )
        except InsufficientBalance as e:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{account} holds {e.available} CEU; this call needs up to {amount}",
                reason="INSUFFICIENT_BALANCE",
                violations=[("metadata." + ACCOUNT_HEADER, "not enough CEU for the reservation")],
            ) from None
        return Meter(account, amount, rid, rpc)  # type: ignore[arg-type]

    def settle(
        self, meter: Meter | None, site_updates: int, outputs: Sequence[np.ndarray] = ()
    ) -> int:
        """Close the reservation: charge the measured work (at most the reservation), refund the
        rest, and record the digests of `outputs` (the arrays returned to the caller) as billed
        outputs, all in one transaction. Returns the charge (0 when the sweeper refunded the
        reservation first: the work is then free, and its outputs are not billed)."""
        if meter is None or meter.settled:
            return 0 if meter is None else meter.charged
        meter.settled = True
        charge = min(meter.reserved, price(site_updates, self.per_million) if site_updates else 0)
        digests = [array_digest(a) for a in outputs] if charge > 0 else []
        with self.ledger.transaction() as tx:
            row = tx.db.one("SELECT state, rpc FROM reservations WHERE id = ?", (meter.id,))
            if row is None or row[0] != "open":
                log.warning(
                    "reservation was closed before the call settled; its work is not charged",
                    extra={
                        "reservation": meter.id,
                        "state": row[0] if row else None,
                        "account": meter.account,
                    },
                )
                return 0
            tx.post(
                "charge",
                [
                    (ESCROW, "CEU", -meter.reserved),
                    (TREASURY, "CEU", charge),
                    (meter.account, "CEU", meter.reserved - charge),
                ],
                request_id=f"reservation:{meter.id}",
                account=meter.account,
                reference=f"reservations/{meter.id}",
            )
            tx.db.run(
                "UPDATE reservations SET state = 'settled', charged = ? WHERE id = ?",
                (charge, meter.id),
            )
            created = now_text()
            tx.db.many(
                "INSERT INTO outputs (id, digest, account, rpc, reservation, charged, create_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (uuid.uuid4().hex, d, meter.account, row[1], meter.id, charge, created)
                    for d in digests
                ],
            )
        meter.charged = charge
        return charge

    # -- escrow recovery ------------------------------------------------------------------
    def _refund(self, tx: Tx, rid: str, account: str, amount: int, why: str) -> None:
        tx.post(
            "refund",
            [(ESCROW, "CEU", -amount), (account, "CEU", amount)],
            request_id=f"reservation:{rid}",
            account=account,
            reference=f"reservations/{rid}",
        )
        tx.db.run("UPDATE reservations SET state = 'refunded' WHERE id = ?", (rid,))
        log.info(
            "reservation refunded",
            extra={"reservation": rid, "account": account, "amount": amount, "why": why},
        )

    def sweep(self, *, startup: bool = False) -> int:
        """Refund expired open reservations (any node); at start-up also this node's open ones,
        left by a previous incarnation. Returns how many were refunded."""
        now = time.time()
        with self.ledger.transaction() as tx:
            rows = tx.db.all(
                "SELECT id, account, amount, node, expires FROM reservations WHERE state = 'open' AND (expires <= ?"
                + (" OR node = ?)" if startup else ")")
                + " ORDER BY created",
                (now, self.node) if startup else (now,),
            )
            for rid, account, amount, node, expires in rows:
                self._refund(
                    tx,
                    rid,
                    account,
                    int(amount),
                    "expired" if expires <= now else f"node {node} restarted",
                )
        return len(rows)


class Sweeper:
    """The periodic refund of expired reservations, as an asyncio task."""

    def __init__(self, metering: Metering, interval: float) -> None:
        self.metering, self.interval = metering, interval
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._loop(), name="idf-escrow-sweeper")

    async def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
            if self._stop.is_set():
                return
            try:
                await asyncio.to_thread(self.metering.sweep)
            except Exception:  # noqa: BLE001 - a failed sweep is retried next period; never kill the loop
                log.exception("escrow sweep failed")

    async def stop(self) -> None:
        """Stop after the sweep in progress, if any, has committed (the ledger may close next)."""
        self._stop.set()
        await self.task


async def start_sweeper(metering: Metering, interval: float | None = None) -> Sweeper:
    """Refund what a previous incarnation left in escrow, then sweep every `interval` seconds
    (default: a quarter of the reservation TTL, at most 30 s). Call before the server accepts
    calls: the start-up pass refunds every open reservation of this node."""
    refunded = await asyncio.to_thread(metering.sweep, startup=True)
    if refunded:
        log.warning(
            "refunded reservations left in escrow", extra={"count": refunded, "node": metering.node}
        )
    return Sweeper(
        metering, interval if interval is not None else max(0.05, min(metering.ttl / 4, 30.0))
    )


# -- rewards -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reward:
    amount: int
    reason: str  # REWARDED, REWARD_CAPPED, or why nothing was paid


def reward(
    ledger: Ledger,
    *,
    enabled: bool,
    pft_per_ceu: float,
    account: str | None,
    proof_id: str,
    earned: int,
    prediction: str | None,
    reference: str | None,
) -> Reward:
    """The PFT reward of a PASS proof that `earned` PFT base units by its policy's rule and whose
    inputs have the digests `prediction` and `reference` (None for sequence policies). Pays only
    when the prediction is an output this service billed to `account`, the reference is no
    output of this service and differs from the prediction, once per billed output, at most
    floor(charge * pft_per_ceu) per billed call in all."""
    if not enabled:
        return Reward(0, "METERING_OFF")
    if not is_user_account(account):
        return Reward(0, "NO_ACCOUNT")
    if prediction is None or reference is None:
        return Reward(0, "NO_PREDICTION")
    if prediction == reference:
        return Reward(0, "SELF_COMPARISON")
    if earned <= 0:
        return Reward(0, "POLICY_PAYS_NOTHING")
    with ledger.transaction() as tx:
        db = tx.db
        if db.one("SELECT 1 FROM outputs WHERE digest = ?", (reference,)):
            return Reward(0, "REFERENCE_IS_SERVICE_OUTPUT")
        rows = db.all(
            "SELECT id, reservation, charged, reward_proof FROM outputs WHERE digest = ? AND account = ? ORDER BY create_time, id",
            (prediction, account),
        )
        if not rows:
            other = db.one("SELECT 1 FROM outputs WHERE digest = ?", (prediction,))
            return Reward(0, "NOT_CALLERS_OUTPUT" if other else "NOT_A_BILLED_OUTPUT")
        reason = "ALREADY_REWARDED"
        for output_id, reservation, charged, rewarded in rows:
            if rewarded is not None:
                continue
            (paid,) = db.one(
                "SELECT COALESCE(SUM(reward), 0) FROM outputs WHERE reservation = ?", (reservation,)
            )  # type: ignore[misc]
            budget = reward_budget(int(charged), int(paid), pft_per_ceu)
            if budget <= 0:
                reason = "CALL_CAP_REACHED"
                continue
            amount = min(earned, budget)
            tx.post(
                "reward",
                [(ISSUANCE, "PFT", -amount), (account, "PFT", amount)],
                request_id=f"reward:{output_id}",  # type: ignore[list-item]
                account=account,
                fingerprint=fingerprint({"proof": proof_id}),
                reference=f"proofs/{proof_id}",
            )  # type: ignore[arg-type]
            db.run(
                "UPDATE outputs SET reward_proof = ?, reward = ? WHERE id = ?",
                (proof_id, amount, output_id),
            )
            return Reward(amount, "REWARDED" if amount == earned else "REWARD_CAPPED")
        return Reward(0, reason)
