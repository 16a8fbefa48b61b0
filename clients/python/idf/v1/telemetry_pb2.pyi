import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from idf.v1 import field_pb2 as _field_pb2
from idf.v1 import access_pb2 as _access_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReadingQuality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READING_QUALITY_UNSPECIFIED: _ClassVar[ReadingQuality]
    READING_QUALITY_GOOD: _ClassVar[ReadingQuality]
    READING_QUALITY_UNCERTAIN: _ClassVar[ReadingQuality]
    READING_QUALITY_BAD: _ClassVar[ReadingQuality]
READING_QUALITY_UNSPECIFIED: ReadingQuality
READING_QUALITY_GOOD: ReadingQuality
READING_QUALITY_UNCERTAIN: ReadingQuality
READING_QUALITY_BAD: ReadingQuality

class SensorReading(_message.Message):
    __slots__ = ("site", "sensor", "index", "value", "measure_time", "unit", "quality", "reading_id")
    SITE_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MEASURE_TIME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    READING_ID_FIELD_NUMBER: _ClassVar[int]
    site: str
    sensor: str
    index: _containers.RepeatedScalarFieldContainer[int]
    value: float
    measure_time: _timestamp_pb2.Timestamp
    unit: str
    quality: ReadingQuality
    reading_id: str
    def __init__(self, site: _Optional[str] = ..., sensor: _Optional[str] = ..., index: _Optional[_Iterable[int]] = ..., value: _Optional[float] = ..., measure_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., unit: _Optional[str] = ..., quality: _Optional[_Union[ReadingQuality, str]] = ..., reading_id: _Optional[str] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("readings",)
    READINGS_FIELD_NUMBER: _ClassVar[int]
    readings: _containers.RepeatedCompositeFieldContainer[SensorReading]
    def __init__(self, readings: _Optional[_Iterable[_Union[SensorReading, _Mapping]]] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("accepted_count", "rejected_count", "duplicate_count", "rejections", "last_sequence")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    rejected_count: int
    duplicate_count: int
    rejections: _containers.RepeatedCompositeFieldContainer[ReadingRejection]
    last_sequence: int
    def __init__(self, accepted_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[ReadingRejection, _Mapping]]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class ReadingRejection(_message.Message):
    __slots__ = ("position", "field", "reason")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    position: int
    field: str
    reason: str
    def __init__(self, position: _Optional[int] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EnergyMap(_message.Message):
    __slots__ = ("name", "field", "update_time", "reading_count", "sequence", "observed_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    READING_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    field: _field_pb2.Field
    update_time: _timestamp_pb2.Timestamp
    reading_count: int
    sequence: int
    observed_count: int
    def __init__(self, name: _Optional[str] = ..., field: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reading_count: _Optional[int] = ..., sequence: _Optional[int] = ..., observed_count: _Optional[int] = ...) -> None: ...

class GetEnergyMapRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetEnergyMapResponse(_message.Message):
    __slots__ = ("energy_map",)
    ENERGY_MAP_FIELD_NUMBER: _ClassVar[int]
    energy_map: EnergyMap
    def __init__(self, energy_map: _Optional[_Union[EnergyMap, _Mapping]] = ...) -> None: ...

class WatchEnergyMapRequest(_message.Message):
    __slots__ = ("name", "after_sequence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_sequence: int
    def __init__(self, name: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchEnergyMapResponse(_message.Message):
    __slots__ = ("energy_map",)
    ENERGY_MAP_FIELD_NUMBER: _ClassVar[int]
    energy_map: EnergyMap
    def __init__(self, energy_map: _Optional[_Union[EnergyMap, _Mapping]] = ...) -> None: ...

class SiteEvent(_message.Message):
    __slots__ = ("site", "event", "rule", "sequence", "time", "details")
    SITE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    site: str
    event: str
    rule: int
    sequence: int
    time: _timestamp_pb2.Timestamp
    details: _struct_pb2.Struct
    def __init__(self, site: _Optional[str] = ..., event: _Optional[str] = ..., rule: _Optional[int] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: str
    def __init__(self, site: _Optional[str] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: SiteEvent
    def __init__(self, event: _Optional[_Union[SiteEvent, _Mapping]] = ...) -> None: ...
