from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Dtype(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[Dtype]
    DTYPE_FLOAT32: _ClassVar[Dtype]
    DTYPE_FLOAT64: _ClassVar[Dtype]
    DTYPE_INT8: _ClassVar[Dtype]
    DTYPE_INT32: _ClassVar[Dtype]

class BoundaryCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BOUNDARY_CONDITION_UNSPECIFIED: _ClassVar[BoundaryCondition]
    BOUNDARY_CONDITION_PERIODIC: _ClassVar[BoundaryCondition]
    BOUNDARY_CONDITION_ZERO_FLUX: _ClassVar[BoundaryCondition]
    BOUNDARY_CONDITION_FIXED_VALUE: _ClassVar[BoundaryCondition]
DTYPE_UNSPECIFIED: Dtype
DTYPE_FLOAT32: Dtype
DTYPE_FLOAT64: Dtype
DTYPE_INT8: Dtype
DTYPE_INT32: Dtype
BOUNDARY_CONDITION_UNSPECIFIED: BoundaryCondition
BOUNDARY_CONDITION_PERIODIC: BoundaryCondition
BOUNDARY_CONDITION_ZERO_FLUX: BoundaryCondition
BOUNDARY_CONDITION_FIXED_VALUE: BoundaryCondition

class Field(_message.Message):
    __slots__ = ("shape", "dtype", "data", "spacing", "boundary", "boundary_value", "units")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SPACING_FIELD_NUMBER: _ClassVar[int]
    BOUNDARY_FIELD_NUMBER: _ClassVar[int]
    BOUNDARY_VALUE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: Dtype
    data: bytes
    spacing: _containers.RepeatedScalarFieldContainer[float]
    boundary: BoundaryCondition
    boundary_value: float
    units: str
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[Dtype, str]] = ..., data: _Optional[bytes] = ..., spacing: _Optional[_Iterable[float]] = ..., boundary: _Optional[_Union[BoundaryCondition, str]] = ..., boundary_value: _Optional[float] = ..., units: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("site_updates", "compute_seconds", "charged_ceu")
    SITE_UPDATES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_CEU_FIELD_NUMBER: _ClassVar[int]
    site_updates: int
    compute_seconds: float
    charged_ceu: int
    def __init__(self, site_updates: _Optional[int] = ..., compute_seconds: _Optional[float] = ..., charged_ceu: _Optional[int] = ...) -> None: ...
