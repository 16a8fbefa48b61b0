"""The Python SDK of Industriverse IDF: `Client` / `AsyncClient`, ndarray <-> Field, errors."""

from idf.client import results
from idf.client._protocol import (
    TOKENS,
    Forecast,
    Reading,
    Usage,
    account_name,
    default_target,
    predict_request,
    sample_request,
)
from idf.client.client import AsyncClient, Client
from idf.client.errors import (
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    IdfError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from idf.client.fields import FieldDecodeError, FieldMeta, field_meta, from_field, to_field

__all__ = [
    "TOKENS",
    "AsyncClient",
    "CancelledError",
    "Client",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldDecodeError",
    "FieldMeta",
    "FieldViolation",
    "Forecast",
    "Reading",
    "IdfError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "Usage",
    "account_name",
    "default_target",
    "field_meta",
    "from_field",
    "predict_request",
    "results",
    "sample_request",
    "to_field",
]
