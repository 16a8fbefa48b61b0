"""MarketService: validation at the boundary, then `idf.server.market` operations on the ledger."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import grpc
from google.protobuf import json_format

from idf.engine.errors import ParameterError
from idf.engine.market.amm import AmmError
from idf.server import auth, market, paging
from idf.server.config import Settings
from idf.server.errors import ApiError, invalid_argument
from idf.server.rpc import run_blocking, unary
from idf.store.ledger import (
    SYSTEM,
    AmountOverflow,
    IdempotencyKeyReused,
    InsufficientBalance,
    Ledger,
    invariants,
)
from idf.v1 import market_pb2, market_pb2_grpc

TOKEN_NAMES = {market_pb2.TOKEN_CEU: "CEU", market_pb2.TOKEN_PFT: "PFT", market_pb2.TOKEN_LP: "LP"}
TOKEN_CODES = {v: k for k, v in TOKEN_NAMES.items()}


def _failed(reason: str, message: str, field: str = "") -> ApiError:
    return ApiError(
        grpc.StatusCode.FAILED_PRECONDITION,
        message,
        reason=reason,
        violations=[(field, message)] if field else (),
    )


def _account(value: str, field: str = "account") -> str:
    """A user account the caller may act for (idf.server.auth.acting_account)."""
    if not market.is_user_account(value):
        raise invalid_argument(
            field,
            "must look like market/accounts/{id}: lowercase letters, digits, . _ -, not starting with -",
        )
    return auth.acting_account(value, field) or value


def _token_in(token: int) -> str:
    if token not in (market_pb2.TOKEN_CEU, market_pb2.TOKEN_PFT):
        raise invalid_argument("token_in", "must be TOKEN_CEU or TOKEN_PFT")
    return TOKEN_NAMES[token]


def _deadline(request: Any) -> None:
    if not request.HasField("deadline"):
        raise invalid_argument("deadline", "every mutating call needs a deadline")
    d = request.deadline
    # a Timestamp is valid from 0001-01-01 to 9999-12-31 with nanos in [0, 1e9) (google.protobuf)
    if not (-62135596800 <= d.seconds <= 253402300799 and 0 <= d.nanos < 10**9):
        raise invalid_argument(
            "deadline",
            "not a valid timestamp (seconds between years 1 and 9999, nanos in [0, 1e9))",
        )
    if d.ToNanoseconds() < time.time_ns():
        raise _failed(
            "DEADLINE_EXPIRED",
            f"the deadline {request.deadline.ToJsonString()} has passed",
            "deadline",
        )


def _request_id(request: Any) -> str:
    if not 1 <= len(request.request_id) <= 128:
        raise invalid_argument(
            "request_id", "an idempotency key of 1 to 128 characters is required"
        )
    return request.request_id


def _non_negative(request: Any, *fields: str) -> None:
    for f in fields:
        if getattr(request, f) < 0:
            raise invalid_argument(f, "must be >= 0")


def _exact(request: Any) -> dict[str, int]:
    which = request.WhichOneof("amount")
    if which is None:
        raise invalid_argument("amount_in", "give amount_in (exact in) or amount_out (exact out)")
    value = getattr(request, which)
    if value <= 0:
        raise invalid_argument(which, f"must be > 0, got {value}")
    return {which: value}


def _pool(data: dict) -> market_pb2.Pool:
    return market_pb2.Pool(**data)


class MarketServicer(market_pb2_grpc.MarketServiceServicer):
    def __init__(self, settings: Settings, executor: Executor, ledger: Ledger) -> None:
        self.settings = settings
        self.executor = executor
        self.ledger = ledger

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await run_blocking(self.executor, fn, self.ledger, *args, **kwargs)
        except market.MarketError as e:
            if e.reason == "POOL_NOT_FOUND":
                raise ApiError(grpc.StatusCode.NOT_FOUND, str(e), reason=e.reason) from None
            raise _failed(e.reason, str(e), e.field) from None
        except AmmError as e:
            raise _failed(e.reason, str(e)) from None
        except InsufficientBalance as e:
            raise _failed("INSUFFICIENT_BALANCE", str(e), "account") from None
        except AmountOverflow as e:
            raise invalid_argument("amount", str(e), reason="AMOUNT_OVERFLOW") from None
        except IdempotencyKeyReused as e:
            raise invalid_argument("request_id", str(e), reason="IDEMPOTENCY_KEY_REUSED") from None
        except ParameterError as e:
            raise invalid_argument(e.parameter, e.reason) from None

    @unary
    async def GetPool(
        self, request: market_pb2.GetPoolRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.GetPoolResponse:
        return market_pb2.GetPoolResponse(
            pool=_pool(await self._run(market.get_pool, request.name))
        )

    @unary
    async def Quote(
        self, request: market_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.QuoteResponse:
        result = await self._run(
            market.quote, request.pool, _token_in(request.token_in), **_exact(request)
        )
        return market_pb2.QuoteResponse(**result)

    @unary
    async def Swap(
        self, request: market_pb2.SwapRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.SwapResponse:
        account, token = _account(request.account), _token_in(request.token_in)
        exact = _exact(request)
        _non_negative(request, "min_amount_out", "max_amount_in")
        if "amount_out" in exact and request.max_amount_in <= 0:
            raise invalid_argument(
                "max_amount_in", "an exact-out swap needs max_amount_in > 0 (slippage protection)"
            )
        rid = _request_id(request)
        _deadline(request)
        result = await self._run(
            market.swap,
            request.pool,
            account,
            token,
            **exact,
            min_amount_out=request.min_amount_out,
            max_amount_in=request.max_amount_in,
            request_id=rid,
        )
        return market_pb2.SwapResponse(
            amount_in=result["amount_in"],
            amount_out=result["amount_out"],
            pool=_pool(result["pool"]),
            transaction_id=result["transaction_id"],
        )

    @unary
    async def AddLiquidity(
        self, request: market_pb2.AddLiquidityRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.AddLiquidityResponse:
        account = _account(request.account)
        for f in ("amount_ceu_desired", "amount_pft_desired"):
            if getattr(request, f) <= 0:
                raise invalid_argument(f, "must be > 0")
        _non_negative(request, "amount_ceu_min", "amount_pft_min")
        rid = _request_id(request)
        _deadline(request)
        result = await self._run(
            market.add_liquidity,
            request.pool,
            account,
            request.amount_ceu_desired,
            request.amount_pft_desired,
            request.amount_ceu_min,
            request.amount_pft_min,
            request_id=rid,
        )
        return market_pb2.AddLiquidityResponse(
            amount_ceu=result["amount_ceu"],
            amount_pft=result["amount_pft"],
            shares=result["shares"],
            pool=_pool(result["pool"]),
            transaction_id=result["transaction_id"],
        )

    @unary
    async def RemoveLiquidity(
        self, request: market_pb2.RemoveLiquidityRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.RemoveLiquidityResponse:
        account = _account(request.account)
        if request.shares <= 0:
            raise invalid_argument("shares", "must be > 0")
        _non_negative(request, "amount_ceu_min", "amount_pft_min")
        rid = _request_id(request)
        _deadline(request)
        result = await self._run(
            market.remove_liquidity,
            request.pool,
            account,
            request.shares,
            request.amount_ceu_min,
            request.amount_pft_min,
            request_id=rid,
        )
        return market_pb2.RemoveLiquidityResponse(
            amount_ceu=result["amount_ceu"],
            amount_pft=result["amount_pft"],
            pool=_pool(result["pool"]),
            transaction_id=result["transaction_id"],
        )

    @unary
    async def GetBalance(
        self, request: market_pb2.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.GetBalanceResponse:
        account = _account(request.account)  # here, not in the thread: the caller is bound here
        balances = await self._run(lambda ledger: ledger.balances(account))
        return market_pb2.GetBalanceResponse(
            balances=[
                market_pb2.TokenAmount(token=TOKEN_CODES[t], amount=a)
                for t, a in balances.items()
                if t in TOKEN_CODES
            ]
        )

    @unary
    async def ListTransactions(
        self, request: market_pb2.ListTransactionsRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.ListTransactionsResponse:
        account = _account(request.account)
        size = paging.page_size(request.page_size)
        before = paging.decode_int(request.page_token, "seq") if request.page_token else None
        entries = await self._run(
            lambda ledger: ledger.history(account, before=before, limit=size + 1)
        )
        page = entries[:size]
        token = paging.encode("seq", page[-1].seq) if len(entries) > size else ""
        out = market_pb2.ListTransactionsResponse(next_page_token=token)
        for e in page:
            t = out.transactions.add(
                id=e.id, kind=e.kind, request_id=e.request_id or "", reference=e.reference
            )
            t.create_time.FromJsonString(e.create_time)
            for a, tok, amount in e.postings:
                t.postings.add(
                    account=a,
                    token=TOKEN_CODES.get(tok, market_pb2.TOKEN_UNSPECIFIED),
                    amount=amount,
                )
        return out

    def _require_admin(self, context: grpc.aio.ServicerContext, rpc: str) -> None:
        """With auth on, the interceptor has checked the market.admin permission (an admin key, or
        the admin token). With auth off: `authorization: Bearer <admin_token>`, compared in
        constant time."""
        if self.settings.auth == "api-key":
            return
        token = self.settings.admin_token
        if token is None:
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{rpc} is disabled: no admin token is configured (IDF_ADMIN_TOKEN)",
                reason="ADMIN_DISABLED",
            )
        sent = next((v for k, v in context.invocation_metadata() or () if k == "authorization"), "")
        given = sent.encode() if isinstance(sent, str) else bytes(sent)
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            raise ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{rpc} is for administrators: send authorization: Bearer <admin token>",
                reason="NOT_ADMIN",
            )

    @unary
    async def GetLedgerAudit(
        self, request: market_pb2.GetLedgerAuditRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.GetLedgerAuditResponse:
        self._require_admin(context, "GetLedgerAudit")
        audit = await self._run(lambda ledger: ledger.audit())
        checks = invariants(audit)
        out = market_pb2.GetLedgerAuditResponse(
            open_reservation_count=audit["open_reservations"]["count"],
            open_reservation_total=audit["open_reservations"]["total"],
            journal_entries=audit["entries"],
            passed=all(c.passed for c in checks),
            invariants=[
                market_pb2.LedgerInvariant(
                    name=c.name, description=c.description, passed=c.passed, detail=c.detail
                )
                for c in checks
            ],
        )
        supply: dict[str, int] = {}
        for (account, token), amount in sorted(audit["balances"].items()):
            if account.startswith(SYSTEM) or not market.is_user_account(account):
                out.system_balances.add(
                    account=account,
                    token=TOKEN_CODES.get(token, market_pb2.TOKEN_UNSPECIFIED),
                    amount=amount,
                )
            if account.startswith(market.ISSUANCE):
                supply[token] = supply.get(token, 0) - amount
        out.supply.extend(
            market_pb2.TokenAmount(token=TOKEN_CODES[t], amount=a)
            for t, a in sorted(supply.items())
            if t in TOKEN_CODES
        )
        return out

    @unary
    async def Mint(
        self, request: market_pb2.MintRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.MintResponse:
        self._require_admin(context, "Mint")
        account = _account(request.account)
        if request.amount.token not in (market_pb2.TOKEN_CEU, market_pb2.TOKEN_PFT):
            raise invalid_argument("amount.token", "must be TOKEN_CEU or TOKEN_PFT")
        if request.amount.amount <= 0:
            raise invalid_argument("amount.amount", "must be > 0")
        rid = _request_id(request)
        result = await self._run(
            market.mint,
            account,
            TOKEN_NAMES[request.amount.token],
            request.amount.amount,
            request_id=rid,
        )
        return json_format.ParseDict(
            {
                "transaction_id": result["transaction_id"],
                "balance": {
                    "token": f"TOKEN_{result['balance']['token']}",
                    "amount": str(result["balance"]["amount"]),
                },
            },
            market_pb2.MintResponse(),
        )
