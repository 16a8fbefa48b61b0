"""Typed exceptions for failed calls, carrying the server's `google.rpc.Status` details."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: `field` is a path such as "history[0].data"."""

    field: str
    description: str
    reason: str = ""


@dataclass(eq=False)
class IdfError(Exception):
    """A call that ended with a non-OK status.

    `reason` and `domain` come from the server's ErrorInfo (stable, for programs);
    `violations` from its BadRequest (which request fields were wrong and why);
    `retry_after` (seconds) from its RetryInfo: set when the condition is transient (a full queue,
    a rate limit) and the same call may succeed after that delay; None when retrying will not help.
    """

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)
    retry_after: float | None = None

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        for v in self.violations:
            if v.description not in self.message:
                text += f"\n  {v.field}: {v.description}"
        return text


class InvalidArgumentError(IdfError):
    """The request was malformed; see `violations`."""


class NotFoundError(IdfError):
    """A named resource does not exist."""


class FailedPreconditionError(IdfError):
    """The system is not in a state that allows the call (for example an empty balance)."""


class ResourceExhaustedError(IdfError):
    """A quota, balance or size limit was hit."""


class UnauthenticatedError(IdfError):
    """No valid credentials."""


class PermissionDeniedError(IdfError):
    """Credentials lack the permission."""


class UnavailableError(IdfError):
    """The server could not be reached or is shutting down; safe to retry."""


class DeadlineExceededError(IdfError):
    """The call ran past its deadline."""


class UnimplementedError(IdfError):
    """The server does not offer this capability yet."""


class CancelledError(IdfError):
    """The call was cancelled."""


_BY_CODE: dict[grpc.StatusCode, type[IdfError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.CANCELLED: CancelledError,
}


def from_rpc_error(error: grpc.RpcError) -> IdfError:
    """Convert a grpc (sync or aio) RpcError into the matching IdfError subclass."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    message = error.details() if callable(getattr(error, "details", None)) else str(error)
    trailers = (
        error.trailing_metadata() if callable(getattr(error, "trailing_metadata", None)) else ()
    )
    cls = _BY_CODE.get(code, IdfError)
    exc = cls(code=code, message=message or "")
    for key, value in trailers or ():
        if key == _STATUS_DETAILS_KEY:
            _attach_details(exc, status_pb2.Status.FromString(value))
    return exc


def _attach_details(exc: IdfError, status: status_pb2.Status) -> None:
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            exc.violations.extend(
                FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
            )
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            exc.reason, exc.domain = info.reason, info.domain
            exc.metadata.update(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            exc.retry_after = retry.retry_delay.ToMilliseconds() / 1000
