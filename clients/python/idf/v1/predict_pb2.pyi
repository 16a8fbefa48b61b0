from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from idf.v1 import field_pb2 as _field_pb2
from idf.v1 import access_pb2 as _access_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Regime(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGIME_UNSPECIFIED: _ClassVar[Regime]
    REGIME_UNDETERMINED: _ClassVar[Regime]
    REGIME_STEADY: _ClassVar[Regime]
    REGIME_PERIODIC: _ClassVar[Regime]
    REGIME_CHAOTIC: _ClassVar[Regime]
REGIME_UNSPECIFIED: Regime
REGIME_UNDETERMINED: Regime
REGIME_STEADY: Regime
REGIME_PERIODIC: Regime
REGIME_CHAOTIC: Regime

class TransportParameters(_message.Message):
    __slots__ = ("diffusivity", "velocity", "dt", "substeps", "source")
    DIFFUSIVITY_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_FIELD_NUMBER: _ClassVar[int]
    DT_FIELD_NUMBER: _ClassVar[int]
    SUBSTEPS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    diffusivity: float
    velocity: _containers.RepeatedScalarFieldContainer[float]
    dt: float
    substeps: int
    source: _field_pb2.Field
    def __init__(self, diffusivity: _Optional[float] = ..., velocity: _Optional[_Iterable[float]] = ..., dt: _Optional[float] = ..., substeps: _Optional[int] = ..., source: _Optional[_Union[_field_pb2.Field, _Mapping]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("history", "steps", "model", "transport", "flow", "ensemble_members", "seed")
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    history: _containers.RepeatedCompositeFieldContainer[_field_pb2.Field]
    steps: int
    model: str
    transport: TransportParameters
    flow: FlowParameters
    ensemble_members: int
    seed: int
    def __init__(self, history: _Optional[_Iterable[_Union[_field_pb2.Field, _Mapping]]] = ..., steps: _Optional[int] = ..., model: _Optional[str] = ..., transport: _Optional[_Union[TransportParameters, _Mapping]] = ..., flow: _Optional[_Union[FlowParameters, _Mapping]] = ..., ensemble_members: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class FlowParameters(_message.Message):
    __slots__ = ("reynolds",)
    REYNOLDS_FIELD_NUMBER: _ClassVar[int]
    reynolds: float
    def __init__(self, reynolds: _Optional[float] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("frames", "stddev", "frame_interval", "model", "totals", "cfl", "usage")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    STDDEV_FIELD_NUMBER: _ClassVar[int]
    FRAME_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    CFL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[_field_pb2.Field]
    stddev: _containers.RepeatedCompositeFieldContainer[_field_pb2.Field]
    frame_interval: float
    model: str
    totals: _containers.RepeatedScalarFieldContainer[float]
    cfl: float
    usage: _field_pb2.Usage
    def __init__(self, frames: _Optional[_Iterable[_Union[_field_pb2.Field, _Mapping]]] = ..., stddev: _Optional[_Iterable[_Union[_field_pb2.Field, _Mapping]]] = ..., frame_interval: _Optional[float] = ..., model: _Optional[str] = ..., totals: _Optional[_Iterable[float]] = ..., cfl: _Optional[float] = ..., usage: _Optional[_Union[_field_pb2.Usage, _Mapping]] = ...) -> None: ...

class DetectRegimeRequest(_message.Message):
    __slots__ = ("frames", "frame_interval", "model")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FRAME_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[_field_pb2.Field]
    frame_interval: float
    model: str
    def __init__(self, frames: _Optional[_Iterable[_Union[_field_pb2.Field, _Mapping]]] = ..., frame_interval: _Optional[float] = ..., model: _Optional[str] = ...) -> None: ...

class RegimeProbability(_message.Message):
    __slots__ = ("regime", "probability")
    REGIME_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    regime: Regime
    probability: float
    def __init__(self, regime: _Optional[_Union[Regime, str]] = ..., probability: _Optional[float] = ...) -> None: ...

class DetectRegimeResponse(_message.Message):
    __slots__ = ("regime", "probabilities", "features", "frames_needed", "model")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REGIME_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_NEEDED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    regime: Regime
    probabilities: _containers.RepeatedCompositeFieldContainer[RegimeProbability]
    features: _containers.ScalarMap[str, float]
    frames_needed: int
    model: str
    def __init__(self, regime: _Optional[_Union[Regime, str]] = ..., probabilities: _Optional[_Iterable[_Union[RegimeProbability, _Mapping]]] = ..., features: _Optional[_Mapping[str, float]] = ..., frames_needed: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...
