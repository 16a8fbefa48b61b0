import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from idf.v1 import access_pb2 as _access_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Token(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_UNSPECIFIED: _ClassVar[Token]
    TOKEN_CEU: _ClassVar[Token]
    TOKEN_PFT: _ClassVar[Token]
    TOKEN_LP: _ClassVar[Token]
TOKEN_UNSPECIFIED: Token
TOKEN_CEU: Token
TOKEN_PFT: Token
TOKEN_LP: Token

class TokenAmount(_message.Message):
    __slots__ = ("token", "amount")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    token: Token
    amount: int
    def __init__(self, token: _Optional[_Union[Token, str]] = ..., amount: _Optional[int] = ...) -> None: ...

class Pool(_message.Message):
    __slots__ = ("name", "reserve_ceu", "reserve_pft", "total_shares", "fee_bps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESERVE_CEU_FIELD_NUMBER: _ClassVar[int]
    RESERVE_PFT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SHARES_FIELD_NUMBER: _ClassVar[int]
    FEE_BPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    reserve_ceu: int
    reserve_pft: int
    total_shares: int
    fee_bps: int
    def __init__(self, name: _Optional[str] = ..., reserve_ceu: _Optional[int] = ..., reserve_pft: _Optional[int] = ..., total_shares: _Optional[int] = ..., fee_bps: _Optional[int] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPoolResponse(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...

class QuoteRequest(_message.Message):
    __slots__ = ("pool", "token_in", "amount_in", "amount_out")
    POOL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    pool: str
    token_in: Token
    amount_in: int
    amount_out: int
    def __init__(self, pool: _Optional[str] = ..., token_in: _Optional[_Union[Token, str]] = ..., amount_in: _Optional[int] = ..., amount_out: _Optional[int] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("amount_in", "amount_out", "fee", "price_impact")
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    PRICE_IMPACT_FIELD_NUMBER: _ClassVar[int]
    amount_in: int
    amount_out: int
    fee: int
    price_impact: float
    def __init__(self, amount_in: _Optional[int] = ..., amount_out: _Optional[int] = ..., fee: _Optional[int] = ..., price_impact: _Optional[float] = ...) -> None: ...

class SwapRequest(_message.Message):
    __slots__ = ("pool", "account", "token_in", "amount_in", "amount_out", "min_amount_out", "max_amount_in", "deadline", "request_id")
    POOL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    MIN_AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    MAX_AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pool: str
    account: str
    token_in: Token
    amount_in: int
    amount_out: int
    min_amount_out: int
    max_amount_in: int
    deadline: _timestamp_pb2.Timestamp
    request_id: str
    def __init__(self, pool: _Optional[str] = ..., account: _Optional[str] = ..., token_in: _Optional[_Union[Token, str]] = ..., amount_in: _Optional[int] = ..., amount_out: _Optional[int] = ..., min_amount_out: _Optional[int] = ..., max_amount_in: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SwapResponse(_message.Message):
    __slots__ = ("amount_in", "amount_out", "pool", "transaction_id")
    AMOUNT_IN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_OUT_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    amount_in: int
    amount_out: int
    pool: Pool
    transaction_id: str
    def __init__(self, amount_in: _Optional[int] = ..., amount_out: _Optional[int] = ..., pool: _Optional[_Union[Pool, _Mapping]] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class AddLiquidityRequest(_message.Message):
    __slots__ = ("pool", "account", "amount_ceu_desired", "amount_pft_desired", "amount_ceu_min", "amount_pft_min", "deadline", "request_id")
    POOL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CEU_DESIRED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PFT_DESIRED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CEU_MIN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PFT_MIN_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pool: str
    account: str
    amount_ceu_desired: int
    amount_pft_desired: int
    amount_ceu_min: int
    amount_pft_min: int
    deadline: _timestamp_pb2.Timestamp
    request_id: str
    def __init__(self, pool: _Optional[str] = ..., account: _Optional[str] = ..., amount_ceu_desired: _Optional[int] = ..., amount_pft_desired: _Optional[int] = ..., amount_ceu_min: _Optional[int] = ..., amount_pft_min: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddLiquidityResponse(_message.Message):
    __slots__ = ("amount_ceu", "amount_pft", "shares", "pool", "transaction_id")
    AMOUNT_CEU_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PFT_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    amount_ceu: int
    amount_pft: int
    shares: int
    pool: Pool
    transaction_id: str
    def __init__(self, amount_ceu: _Optional[int] = ..., amount_pft: _Optional[int] = ..., shares: _Optional[int] = ..., pool: _Optional[_Union[Pool, _Mapping]] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class RemoveLiquidityRequest(_message.Message):
    __slots__ = ("pool", "account", "shares", "amount_ceu_min", "amount_pft_min", "deadline", "request_id")
    POOL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CEU_MIN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PFT_MIN_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pool: str
    account: str
    shares: int
    amount_ceu_min: int
    amount_pft_min: int
    deadline: _timestamp_pb2.Timestamp
    request_id: str
    def __init__(self, pool: _Optional[str] = ..., account: _Optional[str] = ..., shares: _Optional[int] = ..., amount_ceu_min: _Optional[int] = ..., amount_pft_min: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RemoveLiquidityResponse(_message.Message):
    __slots__ = ("amount_ceu", "amount_pft", "pool", "transaction_id")
    AMOUNT_CEU_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PFT_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    amount_ceu: int
    amount_pft: int
    pool: Pool
    transaction_id: str
    def __init__(self, amount_ceu: _Optional[int] = ..., amount_pft: _Optional[int] = ..., pool: _Optional[_Union[Pool, _Mapping]] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("balances",)
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[TokenAmount]
    def __init__(self, balances: _Optional[_Iterable[_Union[TokenAmount, _Mapping]]] = ...) -> None: ...

class Posting(_message.Message):
    __slots__ = ("account", "token", "amount")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    token: Token
    amount: int
    def __init__(self, account: _Optional[str] = ..., token: _Optional[_Union[Token, str]] = ..., amount: _Optional[int] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("id", "kind", "postings", "create_time", "request_id", "reference")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POSTINGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    postings: _containers.RepeatedCompositeFieldContainer[Posting]
    create_time: _timestamp_pb2.Timestamp
    request_id: str
    reference: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., postings: _Optional[_Iterable[_Union[Posting, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("account", "page_size", "page_token")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account: str
    page_size: int
    page_token: str
    def __init__(self, account: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MintRequest(_message.Message):
    __slots__ = ("account", "amount", "request_id")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    account: str
    amount: TokenAmount
    request_id: str
    def __init__(self, account: _Optional[str] = ..., amount: _Optional[_Union[TokenAmount, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class MintResponse(_message.Message):
    __slots__ = ("transaction_id", "balance")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    balance: TokenAmount
    def __init__(self, transaction_id: _Optional[str] = ..., balance: _Optional[_Union[TokenAmount, _Mapping]] = ...) -> None: ...

class GetLedgerAuditRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AccountBalance(_message.Message):
    __slots__ = ("account", "token", "amount")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    token: Token
    amount: int
    def __init__(self, account: _Optional[str] = ..., token: _Optional[_Union[Token, str]] = ..., amount: _Optional[int] = ...) -> None: ...

class LedgerInvariant(_message.Message):
    __slots__ = ("name", "description", "passed", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    passed: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class GetLedgerAuditResponse(_message.Message):
    __slots__ = ("system_balances", "supply", "open_reservation_count", "open_reservation_total", "invariants", "passed", "journal_entries")
    SYSTEM_BALANCES_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_FIELD_NUMBER: _ClassVar[int]
    OPEN_RESERVATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    OPEN_RESERVATION_TOTAL_FIELD_NUMBER: _ClassVar[int]
    INVARIANTS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    system_balances: _containers.RepeatedCompositeFieldContainer[AccountBalance]
    supply: _containers.RepeatedCompositeFieldContainer[TokenAmount]
    open_reservation_count: int
    open_reservation_total: int
    invariants: _containers.RepeatedCompositeFieldContainer[LedgerInvariant]
    passed: bool
    journal_entries: int
    def __init__(self, system_balances: _Optional[_Iterable[_Union[AccountBalance, _Mapping]]] = ..., supply: _Optional[_Iterable[_Union[TokenAmount, _Mapping]]] = ..., open_reservation_count: _Optional[int] = ..., open_reservation_total: _Optional[int] = ..., invariants: _Optional[_Iterable[_Union[LedgerInvariant, _Mapping]]] = ..., passed: _Optional[bool] = ..., journal_entries: _Optional[int] = ...) -> None: ...
