"""The error model of ARCHITECTURE.md: `google.rpc.Status` with `BadRequest.FieldViolation`s
naming the field and the rule, and an `ErrorInfo` with a stable reason."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "idf.industriverse.dev"
_DETAILS_KEY = "grpc-status-details-bin"


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
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = list(violations)
        self.metadata = metadata or {}

    def status(self) -> status_pb2.Status:
        details = []
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        details.append(_pack(info))
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.violations
                ]
            )
            details.append(_pack(bad))
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


def unimplemented(method: str, capability: str) -> ApiError:
    """UNIMPLEMENTED naming the capability that is not built yet: never a fake result."""
    return ApiError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not available yet: {capability} is not built in this server version",
        reason="NOT_IMPLEMENTED",
        metadata={"method": method},
    )
