import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
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

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_PASS: _ClassVar[Verdict]
    VERDICT_FAIL: _ClassVar[Verdict]
VERDICT_UNSPECIFIED: Verdict
VERDICT_PASS: Verdict
VERDICT_FAIL: Verdict

class Producer(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Metric(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class Check(_message.Message):
    __slots__ = ("metric", "comparison", "threshold", "value", "verdict")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    comparison: str
    threshold: float
    value: float
    verdict: Verdict
    def __init__(self, metric: _Optional[str] = ..., comparison: _Optional[str] = ..., threshold: _Optional[float] = ..., value: _Optional[float] = ..., verdict: _Optional[_Union[Verdict, str]] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("leaf_index", "tree_size", "hashes")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    tree_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("origin", "tree_size", "root_hash", "sign_time", "signature")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGN_TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    origin: str
    tree_size: int
    root_hash: bytes
    sign_time: _timestamp_pb2.Timestamp
    signature: bytes
    def __init__(self, origin: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., sign_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Proof(_message.Message):
    __slots__ = ("name", "record", "signature", "verdict", "policy", "metrics", "checks", "input_digests", "producer", "create_time", "inclusion_proof", "checkpoint")
    class InputDigestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    INPUT_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    record: bytes
    signature: bytes
    verdict: Verdict
    policy: str
    metrics: _containers.RepeatedCompositeFieldContainer[Metric]
    checks: _containers.RepeatedCompositeFieldContainer[Check]
    input_digests: _containers.ScalarMap[str, str]
    producer: Producer
    create_time: _timestamp_pb2.Timestamp
    inclusion_proof: InclusionProof
    checkpoint: Checkpoint
    def __init__(self, name: _Optional[str] = ..., record: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., policy: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[Metric, _Mapping]]] = ..., checks: _Optional[_Iterable[_Union[Check, _Mapping]]] = ..., input_digests: _Optional[_Mapping[str, str]] = ..., producer: _Optional[_Union[Producer, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inclusion_proof: _Optional[_Union[InclusionProof, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class CreateProofRequest(_message.Message):
    __slots__ = ("prediction", "reference", "sequence", "policy", "producer", "request_id")
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    prediction: _field_pb2.Field
    reference: _field_pb2.Field
    sequence: _containers.RepeatedCompositeFieldContainer[_field_pb2.Field]
    policy: str
    producer: Producer
    request_id: str
    def __init__(self, prediction: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., reference: _Optional[_Union[_field_pb2.Field, _Mapping]] = ..., sequence: _Optional[_Iterable[_Union[_field_pb2.Field, _Mapping]]] = ..., policy: _Optional[str] = ..., producer: _Optional[_Union[Producer, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateProofResponse(_message.Message):
    __slots__ = ("proof", "reward_pft", "reward_reason")
    PROOF_FIELD_NUMBER: _ClassVar[int]
    REWARD_PFT_FIELD_NUMBER: _ClassVar[int]
    REWARD_REASON_FIELD_NUMBER: _ClassVar[int]
    proof: Proof
    reward_pft: int
    reward_reason: str
    def __init__(self, proof: _Optional[_Union[Proof, _Mapping]] = ..., reward_pft: _Optional[int] = ..., reward_reason: _Optional[str] = ...) -> None: ...

class GetProofRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetProofResponse(_message.Message):
    __slots__ = ("proof",)
    PROOF_FIELD_NUMBER: _ClassVar[int]
    proof: Proof
    def __init__(self, proof: _Optional[_Union[Proof, _Mapping]] = ...) -> None: ...

class ListProofsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "policy", "verdict", "producer")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    policy: str
    verdict: Verdict
    producer: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., policy: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., producer: _Optional[str] = ...) -> None: ...

class ListProofsResponse(_message.Message):
    __slots__ = ("proofs", "next_page_token")
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    proofs: _containers.RepeatedCompositeFieldContainer[Proof]
    next_page_token: str
    def __init__(self, proofs: _Optional[_Iterable[_Union[Proof, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("name", "description", "checks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    checks: _containers.RepeatedCompositeFieldContainer[Check]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., checks: _Optional[_Iterable[_Union[Check, _Mapping]]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[Policy]
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, _Mapping]]] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("first_tree_size", "second_tree_size")
    FIRST_TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    first_tree_size: int
    second_tree_size: int
    def __init__(self, first_tree_size: _Optional[int] = ..., second_tree_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPublicKeyResponse(_message.Message):
    __slots__ = ("public_key", "key_id")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    key_id: str
    def __init__(self, public_key: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...
