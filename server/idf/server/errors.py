"""The error model of ARCHITECTURE.md: `google.rpc.Status` with `BadRequest.FieldViolation`s
naming the field and the rule, and an `ErrorInfo` with a stable reason."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "idf.industriverse.dev"
_DETAILS_KEY = "grpc-status-details-bin"
# Errors never echo a caller's input whole: a 1 MB model name must not overflow the trailers and
# turn INVALID_ARGUMENT into RESOURCE_EXHAUSTED. Messages, descriptions and metadata are cut here.
MAX_MESSAGE_CHARS = 1024
MAX_DESCRIPTION_CHARS = 512
MAX_QUOTE_CHARS = 64


def quote(value: object, limit: int = MAX_QUOTE_CHARS) -> str:
    """repr() of a caller's value, at most `limit` characters (a prefix and how long it was)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes, list, tuple)) else len(text)
    return f"{text[:limit]}... ({size} long)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 16] + f"... [{len(text)} chars]"


class ApiError(Exception):
    """Raised inside servicers; the RPC boundary turns it into a status with details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str,
        violations: Sequence[tuple[str, str]] = (),
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = _cut(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = [
            (_cut(f, MAX_QUOTE_CHARS * 2), _cut(d, MAX_DESCRIPTION_CHARS)) for f, d in violations
        ][:32]
        self.metadata = {
            _cut(k, MAX_QUOTE_CHARS): _cut(v, MAX_DESCRIPTION_CHARS)
            for k, v in (metadata or {}).items()
        }
        self.retry_after = retry_after

    def status(self) -> status_pb2.Status:
        details = []
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=self.metadata
        )
        details.append(_pack(info))
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.violations
                ]
            )
            details.append(_pack(bad))
        if self.retry_after is not None:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromMilliseconds(max(1, int(self.retry_after * 1000)))
            details.append(_pack(retry))
        return status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=details
        )

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((_DETAILS_KEY, self.status().SerializeToString()),)


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def invalid_argument(field: str, description: str, *, reason: str = "INVALID_FIELD") -> ApiError:
    """INVALID_ARGUMENT naming one field and the rule it broke."""
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid {field}: {description}",
        reason=reason,
        violations=[(field, description)],
    )


def too_large(field: str, description: str) -> ApiError:
    """RESOURCE_EXHAUSTED for a size limit, naming the field."""
    return ApiError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{field} too large: {description}",
        reason="SIZE_LIMIT",
        violations=[(field, description)],
    )


def exhausted(
    reason: str,
    message: str,
    *,
    retry_after: float | None = None,
    violations: Sequence[tuple[str, str]] = (),
    metadata: dict[str, str] | None = None,
) -> ApiError:
    """RESOURCE_EXHAUSTED: a work, queue or rate limit. With `retry_after` (seconds) the status
    carries a RetryInfo: the condition is transient and the same call may succeed later."""
    return ApiError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        reason=reason,
        violations=violations,
        metadata=metadata,
        retry_after=retry_after,
    )


def shutting_down() -> ApiError:
    """UNAVAILABLE while the server drains: the call was not started, so any client may retry it
    (on another replica, or here after the restart)."""
    return ApiError(
        grpc.StatusCode.UNAVAILABLE,
        "the server is shutting down; retry the call",
        reason="SHUTTING_DOWN",
        retry_after=1.0,
    )
