"""numpy arrays <-> `idf.v1.Field`, the one tensor message on the wire.

Encoding writes little-endian, C-order bytes (copying only when the array is not already laid out
that way). Decoding is zero-copy: the array is a read-only view on the message's bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from idf.v1 import field_pb2

#: wire dtype enum -> little-endian numpy dtype
NUMPY_DTYPES: dict[int, np.dtype] = {
    field_pb2.DTYPE_FLOAT32: np.dtype("<f4"),
    field_pb2.DTYPE_FLOAT64: np.dtype("<f8"),
    field_pb2.DTYPE_INT8: np.dtype("i1"),
    field_pb2.DTYPE_INT32: np.dtype("<i4"),
}
_WIRE_DTYPES = {dt.newbyteorder("="): code for code, dt in NUMPY_DTYPES.items()}

#: user-facing boundary names <-> wire enum
BOUNDARIES: dict[str, int] = {
    "periodic": field_pb2.BOUNDARY_CONDITION_PERIODIC,
    "zero-flux": field_pb2.BOUNDARY_CONDITION_ZERO_FLUX,
    "fixed-value": field_pb2.BOUNDARY_CONDITION_FIXED_VALUE,
}
BOUNDARY_NAMES = {code: name for name, code in BOUNDARIES.items()}


class FieldDecodeError(ValueError):
    """A Field message that does not describe a valid array. `path` names the offending part
    relative to the Field ("shape", "data", "dtype", "spacing")."""

    def __init__(self, path: str, reason: str, *, too_large: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.too_large = too_large  # a size limit, not a malformed message


@dataclass(frozen=True)
class FieldMeta:
    """Physical metadata that travels with a field's values."""

    spacing: tuple[float, ...] = ()
    boundary: str = "periodic"
    boundary_value: float = 0.0
    units: str = ""


def to_field(
    array: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    boundary: str | None = None,
    boundary_value: float = 0.0,
    units: str = "",
) -> field_pb2.Field:
    """Encode an array (any memory layout, any byte order) as a Field."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=") if array.dtype.byteorder in "<>" else array.dtype
    code = _WIRE_DTYPES.get(native)
    if code is None:
        raise TypeError(f"unsupported dtype {array.dtype}; use float32, float64, int8 or int32")
    wire = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[code])
    field = field_pb2.Field(shape=wire.shape, dtype=code, data=wire.tobytes())  # type: ignore[arg-type]  # enum ints
    if spacing is not None:
        field.spacing.extend(float(s) for s in spacing)
    if boundary is not None:
        if boundary not in BOUNDARIES:
            raise ValueError(f"unknown boundary {boundary!r}; expected one of {sorted(BOUNDARIES)}")
        field.boundary = BOUNDARIES[boundary]  # type: ignore[assignment]  # enum ints
    field.boundary_value = float(boundary_value)
    field.units = units
    return field


def from_field(field: field_pb2.Field, *, max_elements: int | None = None) -> np.ndarray:
    """Decode a Field into a read-only array viewing the message bytes (no copy).

    Raises FieldDecodeError for an empty or non-positive shape, an unknown dtype, or a byte
    length different from prod(shape) * itemsize.
    """
    dtype = NUMPY_DTYPES.get(field.dtype)
    if dtype is None:
        raise FieldDecodeError("dtype", f"unsupported dtype enum value {field.dtype}")
    shape = tuple(field.shape)
    if not shape:
        raise FieldDecodeError("shape", "must have at least one axis")
    if any(n < 1 for n in shape):
        raise FieldDecodeError("shape", f"every extent must be >= 1, got {list(shape)}")
    count = 1
    for n in shape:
        count *= n
    if max_elements is not None and count > max_elements:
        raise FieldDecodeError(
            "shape",
            f"{count} elements exceed the limit of {max_elements} per field",
            too_large=True,
        )
    if len(field.data) != count * dtype.itemsize:
        raise FieldDecodeError(
            "data",
            f"byte length {len(field.data)} != prod(shape) {count} x itemsize {dtype.itemsize}",
        )
    if field.spacing and len(field.spacing) != len(shape):
        raise FieldDecodeError("spacing", f"has {len(field.spacing)} values for {len(shape)} axes")
    if any(not (s > 0 and np.isfinite(s)) for s in field.spacing):
        raise FieldDecodeError("spacing", "every spacing must be finite and > 0")
    return np.frombuffer(field.data, dtype=dtype).reshape(shape)


def field_meta(field: field_pb2.Field) -> FieldMeta:
    """The physical metadata of a Field, with defaults filled in."""
    return FieldMeta(
        spacing=tuple(field.spacing) or (1.0,) * len(field.shape),
        boundary=BOUNDARY_NAMES.get(field.boundary, "periodic"),
        boundary_value=field.boundary_value,
        units=field.units,
    )
