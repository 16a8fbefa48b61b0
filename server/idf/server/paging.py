"""One way to page every List RPC (aip.dev/158): the page size rule and the page-token codec.

A token is base64url("<kind>:<value>"), opaque to callers: `kind` says what the value is (the
last index, sequence number or name the previous page ended at), so a token of one list is not
taken by another. Integers are checked against int64 (the stores' integers) and must be > 0; a
token this server did not issue is INVALID_ARGUMENT on `page_token`, never an error deeper in."""

from __future__ import annotations

import base64
import binascii

from idf.server.errors import ApiError, invalid_argument
from idf.store.ledger import INT64_MAX

DEFAULT_PAGE, MAX_PAGE = 50, 1000


def page_size(requested: int) -> int:
    """The page size to serve: the default for 0, capped at MAX_PAGE; negative is refused."""
    if requested < 0:
        raise invalid_argument("page_size", "must be >= 0")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def encode(kind: str, value: int | str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def _decode(token: str, kind: str) -> str:
    try:
        got, sep, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _foreign() from None
    if got != kind or not sep:
        raise _foreign()
    return value


def decode_int(token: str, kind: str) -> int:
    """The integer a token of `kind` carries (0 < value <= int64 max)."""
    value = _decode(token, kind)
    try:
        number = int(value)
    except ValueError:
        raise _foreign() from None
    if not 0 < number <= INT64_MAX:
        raise _foreign()
    return number


def decode_str(token: str, kind: str) -> str:
    return _decode(token, kind)


def _foreign() -> ApiError:
    return invalid_argument("page_token", "not a token this server issued")
