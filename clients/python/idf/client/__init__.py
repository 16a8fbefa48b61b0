"""The Python SDK of Industriverse IDF: `Client` / `AsyncClient`, ndarray <-> Field, errors."""

from idf.client._protocol import Forecast, Usage, default_target, predict_request
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
    "AsyncClient",
    "CancelledError",
    "Client",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldDecodeError",
    "FieldMeta",
    "FieldViolation",
    "Forecast",
    "IdfError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "Usage",
    "default_target",
    "field_meta",
    "from_field",
    "predict_request",
    "to_field",
]
