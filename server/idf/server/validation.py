"""Decoding and checking request fields at the boundary, with field paths in every error."""

from __future__ import annotations

import numpy as np

from idf.client.fields import FieldDecodeError, from_field
from idf.server.errors import invalid_argument, too_large
from idf.v1 import field_pb2


def decode_field(field: field_pb2.Field, path: str, *, max_elements: int) -> np.ndarray:
    """The Field as a zero-copy array; INVALID_ARGUMENT (or RESOURCE_EXHAUSTED past the element
    limit) naming `path.<part>` when it is malformed."""
    try:
        return from_field(field, max_elements=max_elements)
    except FieldDecodeError as e:
        if e.too_large:
            raise too_large(f"{path}.{e.path}", e.reason) from None
        raise invalid_argument(f"{path}.{e.path}", e.reason) from None


def require_finite(array: np.ndarray, path: str) -> None:
    """INVALID_ARGUMENT when a float array holds NaN or Inf, naming the first bad index."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise invalid_argument(
            f"{path}.data",
            f"values must be finite; found {array[index]} at index {list(index)}",
            reason="NON_FINITE",
        )
