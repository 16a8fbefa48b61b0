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

class SamplerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLER_KIND_UNSPECIFIED: _ClassVar[SamplerKind]
    SAMPLER_KIND_LANGEVIN: _ClassVar[SamplerKind]
    SAMPLER_KIND_MALA: _ClassVar[SamplerKind]
    SAMPLER_KIND_ANNEALED_LANGEVIN: _ClassVar[SamplerKind]
    SAMPLER_KIND_REPLICA_EXCHANGE: _ClassVar[SamplerKind]
    SAMPLER_KIND_GIBBS: _ClassVar[SamplerKind]
    SAMPLER_KIND_REVERSE_DIFFUSION: _ClassVar[SamplerKind]

class ModelTask(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_TASK_UNSPECIFIED: _ClassVar[ModelTask]
    MODEL_TASK_FORECAST: _ClassVar[ModelTask]
    MODEL_TASK_DENOISE: _ClassVar[ModelTask]
    MODEL_TASK_REGIME: _ClassVar[ModelTask]
SAMPLER_KIND_UNSPECIFIED: SamplerKind
SAMPLER_KIND_LANGEVIN: SamplerKind
SAMPLER_KIND_MALA: SamplerKind
SAMPLER_KIND_ANNEALED_LANGEVIN: SamplerKind
SAMPLER_KIND_REPLICA_EXCHANGE: SamplerKind
SAMPLER_KIND_GIBBS: SamplerKind
SAMPLER_KIND_REVERSE_DIFFUSION: SamplerKind
MODEL_TASK_UNSPECIFIED: ModelTask
MODEL_TASK_FORECAST: ModelTask
MODEL_TASK_DENOISE: ModelTask
MODEL_TASK_REGIME: ModelTask

class Constraint(_message.Message):
    __slots__ = ("name", "target", "tolerance", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    target: float
    tolerance: float
    weight: float
    def __init__(self, name: _Optional[str] = ..., target: _Optional[float] = ..., tolerance: _Optional[float] = ..., weight: _Optional[float] = ...) -> None: ...

class EnergyModelSpec(_message.Message):
    __slots__ = ("name", "parameters", "external_field", "constraints")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    parameters: _containers.ScalarMap[str, float]
    external_field: _field_pb2.Field
    constraints: _containers.RepeatedCompositeFieldContainer[Constraint]
    def __init__(self, name: _Optional[str] = ..., parameters: _Optional[_Mapping[str, float]] = ..., external_field: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., constraints: _Optional[_Iterable[_Union[Constraint, _Mapping]]] = ...) -> None: ...

class SamplerSpec(_message.Message):
    __slots__ = ("kind", "temperature", "step_size", "steps", "burn_in", "max_temperature", "temperatures", "model", "guidance_scale")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BURN_IN_FIELD_NUMBER: _ClassVar[int]
    MAX_TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    kind: SamplerKind
    temperature: float
    step_size: float
    steps: int
    burn_in: int
    max_temperature: float
    temperatures: _containers.RepeatedScalarFieldContainer[float]
    model: str
    guidance_scale: float
    def __init__(self, kind: _Optional[_Union[SamplerKind, str]] = ..., temperature: _Optional[float] = ..., step_size: _Optional[float] = ..., steps: _Optional[int] = ..., burn_in: _Optional[int] = ..., max_temperature: _Optional[float] = ..., temperatures: _Optional[_Iterable[float]] = ..., model: _Optional[str] = ..., guidance_scale: _Optional[float] = ...) -> None: ...

class SampleRequest(_message.Message):
    __slots__ = ("energy_model", "sampler", "shape", "sample_count", "seed", "initial", "dtype")
    ENERGY_MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    energy_model: EnergyModelSpec
    sampler: SamplerSpec
    shape: _containers.RepeatedScalarFieldContainer[int]
    sample_count: int
    seed: int
    initial: _field_pb2.Field
    dtype: _field_pb2.Dtype
    def __init__(self, energy_model: _Optional[_Union[EnergyModelSpec, _Mapping]] = ..., sampler: _Optional[_Union[SamplerSpec, _Mapping]] = ..., shape: _Optional[_Iterable[int]] = ..., sample_count: _Optional[int] = ..., seed: _Optional[int] = ..., initial: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., dtype: _Optional[_Union[_field_pb2.Dtype, str]] = ...) -> None: ...

class SampleProgress(_message.Message):
    __slots__ = ("step", "total_steps", "temperature", "mean_energy", "acceptance_rate")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MEAN_ENERGY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_RATE_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    temperature: float
    mean_energy: float
    acceptance_rate: float
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., temperature: _Optional[float] = ..., mean_energy: _Optional[float] = ..., acceptance_rate: _Optional[float] = ...) -> None: ...

class SampleDiagnostics(_message.Message):
    __slots__ = ("energy", "energy_per_site", "total", "constraint_residual", "acceptance_rate")
    ENERGY_FIELD_NUMBER: _ClassVar[int]
    ENERGY_PER_SITE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINT_RESIDUAL_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_RATE_FIELD_NUMBER: _ClassVar[int]
    energy: float
    energy_per_site: float
    total: float
    constraint_residual: float
    acceptance_rate: float
    def __init__(self, energy: _Optional[float] = ..., energy_per_site: _Optional[float] = ..., total: _Optional[float] = ..., constraint_residual: _Optional[float] = ..., acceptance_rate: _Optional[float] = ...) -> None: ...

class GeneratedSample(_message.Message):
    __slots__ = ("field", "diagnostics")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    field: _field_pb2.Field
    diagnostics: SampleDiagnostics
    def __init__(self, field: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., diagnostics: _Optional[_Union[SampleDiagnostics, _Mapping]] = ...) -> None: ...

class SampleResult(_message.Message):
    __slots__ = ("samples", "effective_sample_size", "usage")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[GeneratedSample]
    effective_sample_size: float
    usage: _field_pb2.Usage
    def __init__(self, samples: _Optional[_Iterable[_Union[GeneratedSample, _Mapping]]] = ..., effective_sample_size: _Optional[float] = ..., usage: _Optional[_Union[_field_pb2.Usage, _Mapping]] = ...) -> None: ...

class SampleResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: SampleProgress
    result: SampleResult
    def __init__(self, progress: _Optional[_Union[SampleProgress, _Mapping]] = ..., result: _Optional[_Union[SampleResult, _Mapping]] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("index", "value")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    index: _containers.RepeatedScalarFieldContainer[int]
    value: float
    def __init__(self, index: _Optional[_Iterable[int]] = ..., value: _Optional[float] = ...) -> None: ...

class ReconstructRequest(_message.Message):
    __slots__ = ("shape", "observations", "observed", "mask", "noise_std", "model", "sample_count", "seed", "return_samples")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    NOISE_STD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RETURN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    observations: _containers.RepeatedCompositeFieldContainer[Observation]
    observed: _field_pb2.Field
    mask: _field_pb2.Field
    noise_std: float
    model: str
    sample_count: int
    seed: int
    return_samples: bool
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., observations: _Optional[_Iterable[_Union[Observation, _Mapping]]] = ..., observed: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., mask: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., noise_std: _Optional[float] = ..., model: _Optional[str] = ..., sample_count: _Optional[int] = ..., seed: _Optional[int] = ..., return_samples: _Optional[bool] = ...) -> None: ...

class ReconstructResponse(_message.Message):
    __slots__ = ("mean", "stddev", "samples", "usage")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STDDEV_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    mean: _field_pb2.Field
    stddev: _field_pb2.Field
    samples: _containers.RepeatedCompositeFieldContainer[_field_pb2.Field]
    usage: _field_pb2.Usage
    def __init__(self, mean: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., stddev: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., samples: _Optional[_Iterable[_Union[_field_pb2.Field, _Mapping]]] = ..., usage: _Optional[_Union[_field_pb2.Usage, _Mapping]] = ...) -> None: ...

class ListEnergyModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ParameterSpec(_message.Message):
    __slots__ = ("name", "description", "default_value", "minimum", "maximum")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    default_value: float
    minimum: float
    maximum: float
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., default_value: _Optional[float] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ...) -> None: ...

class EnergyModel(_message.Message):
    __slots__ = ("name", "description", "parameters", "samplers", "accepts_external_field", "constraints")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SAMPLERS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_EXTERNAL_FIELD_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    samplers: _containers.RepeatedScalarFieldContainer[SamplerKind]
    accepts_external_field: bool
    constraints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ..., samplers: _Optional[_Iterable[_Union[SamplerKind, str]]] = ..., accepts_external_field: _Optional[bool] = ..., constraints: _Optional[_Iterable[str]] = ...) -> None: ...

class ListEnergyModelsResponse(_message.Message):
    __slots__ = ("energy_models",)
    ENERGY_MODELS_FIELD_NUMBER: _ClassVar[int]
    energy_models: _containers.RepeatedCompositeFieldContainer[EnergyModel]
    def __init__(self, energy_models: _Optional[_Iterable[_Union[EnergyModel, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "task", "description", "version", "learned", "history_frames")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FRAMES_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: ModelTask
    description: str
    version: str
    learned: bool
    history_frames: int
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[ModelTask, str]] = ..., description: _Optional[str] = ..., version: _Optional[str] = ..., learned: _Optional[bool] = ..., history_frames: _Optional[int] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
