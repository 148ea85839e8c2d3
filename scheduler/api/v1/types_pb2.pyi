import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    JOB_KIND_TRAINING: _ClassVar[JobKind]
    JOB_KIND_INFERENCE: _ClassVar[JobKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_SCHEDULED: _ClassVar[JobState]
    JOB_STATE_STARTING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_CANCELLING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_PREEMPTED: _ClassVar[JobState]

class MeterSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METER_SOURCE_UNSPECIFIED: _ClassVar[MeterSource]
    METER_SOURCE_COMPUTED: _ClassVar[MeterSource]
    METER_SOURCE_METER: _ClassVar[MeterSource]
    METER_SOURCE_FALLBACK: _ClassVar[MeterSource]

class SiteState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SITE_STATE_UNSPECIFIED: _ClassVar[SiteState]
    SITE_STATE_READY: _ClassVar[SiteState]
    SITE_STATE_DRAINED: _ClassVar[SiteState]
    SITE_STATE_UNREACHABLE: _ClassVar[SiteState]
    SITE_STATE_DISCONNECTED: _ClassVar[SiteState]
JOB_KIND_UNSPECIFIED: JobKind
JOB_KIND_TRAINING: JobKind
JOB_KIND_INFERENCE: JobKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_SCHEDULED: JobState
JOB_STATE_STARTING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_CANCELLING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_PREEMPTED: JobState
METER_SOURCE_UNSPECIFIED: MeterSource
METER_SOURCE_COMPUTED: MeterSource
METER_SOURCE_METER: MeterSource
METER_SOURCE_FALLBACK: MeterSource
SITE_STATE_UNSPECIFIED: SiteState
SITE_STATE_READY: SiteState
SITE_STATE_DRAINED: SiteState
SITE_STATE_UNREACHABLE: SiteState
SITE_STATE_DISCONNECTED: SiteState

class Resources(_message.Message):
    __slots__ = ("gpus", "cpus", "memory_bytes")
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    gpus: int
    cpus: float
    memory_bytes: int
    def __init__(self, gpus: _Optional[int] = ..., cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "kind", "entrypoint", "env", "resources", "replicas", "priority", "allowed_regions", "labels", "max_runtime_s", "max_retries", "slowdown_tolerance_pct", "checkpoint_uri", "checkpoint_grace_s", "serve")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_REGIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_S_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    SLOWDOWN_TOLERANCE_PCT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_URI_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_GRACE_S_FIELD_NUMBER: _ClassVar[int]
    SERVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: JobKind
    entrypoint: str
    env: _containers.ScalarMap[str, str]
    resources: Resources
    replicas: int
    priority: int
    allowed_regions: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    max_runtime_s: int
    max_retries: int
    slowdown_tolerance_pct: int
    checkpoint_uri: str
    checkpoint_grace_s: int
    serve: ServeSpec
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., entrypoint: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., replicas: _Optional[int] = ..., priority: _Optional[int] = ..., allowed_regions: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., max_runtime_s: _Optional[int] = ..., max_retries: _Optional[int] = ..., slowdown_tolerance_pct: _Optional[int] = ..., checkpoint_uri: _Optional[str] = ..., checkpoint_grace_s: _Optional[int] = ..., serve: _Optional[_Union[ServeSpec, _Mapping]] = ...) -> None: ...

class ServeSpec(_message.Message):
    __slots__ = ("import_path", "min_replicas", "max_replicas", "target_rps_per_replica")
    IMPORT_PATH_FIELD_NUMBER: _ClassVar[int]
    MIN_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    TARGET_RPS_PER_REPLICA_FIELD_NUMBER: _ClassVar[int]
    import_path: str
    min_replicas: int
    max_replicas: int
    target_rps_per_replica: float
    def __init__(self, import_path: _Optional[str] = ..., min_replicas: _Optional[int] = ..., max_replicas: _Optional[int] = ..., target_rps_per_replica: _Optional[float] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("step", "step_at", "checkpoint_step", "checkpoint_at", "uri")
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEP_AT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_STEP_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_AT_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    step: int
    step_at: _timestamp_pb2.Timestamp
    checkpoint_step: int
    checkpoint_at: _timestamp_pb2.Timestamp
    uri: str
    def __init__(self, step: _Optional[int] = ..., step_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., checkpoint_step: _Optional[int] = ..., checkpoint_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uri: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "tenant", "client_request_id", "spec", "state", "reason", "pending_reason", "site_id", "run_id", "attempt", "created_at", "updated_at", "last_event_id", "preemptions", "checkpoint", "replicas", "requests_per_s", "endpoint", "power_fraction")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PREEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_S_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    POWER_FRACTION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    tenant: str
    client_request_id: str
    spec: JobSpec
    state: JobState
    reason: str
    pending_reason: str
    site_id: str
    run_id: str
    attempt: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    last_event_id: int
    preemptions: int
    checkpoint: Checkpoint
    replicas: int
    requests_per_s: float
    endpoint: str
    power_fraction: float
    def __init__(self, job_id: _Optional[str] = ..., tenant: _Optional[str] = ..., client_request_id: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ..., pending_reason: _Optional[str] = ..., site_id: _Optional[str] = ..., run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_event_id: _Optional[int] = ..., preemptions: _Optional[int] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., replicas: _Optional[int] = ..., requests_per_s: _Optional[float] = ..., endpoint: _Optional[str] = ..., power_fraction: _Optional[float] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("event_id", "job_id", "tenant", "from_state", "to_state", "reason", "site_id", "run_id", "at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    job_id: str
    tenant: str
    from_state: JobState
    to_state: JobState
    reason: str
    site_id: str
    run_id: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[int] = ..., job_id: _Optional[str] = ..., tenant: _Optional[str] = ..., from_state: _Optional[_Union[JobState, str]] = ..., to_state: _Optional[_Union[JobState, str]] = ..., reason: _Optional[str] = ..., site_id: _Optional[str] = ..., run_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GpuNode(_message.Message):
    __slots__ = ("node_id", "gpu_model", "gpus", "cpus", "memory_bytes")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    gpu_model: str
    gpus: int
    cpus: float
    memory_bytes: int
    def __init__(self, node_id: _Optional[str] = ..., gpu_model: _Optional[str] = ..., gpus: _Optional[int] = ..., cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class MinerFleet(_message.Message):
    __slots__ = ("fleet_id", "model", "count", "rated_w", "ths", "min_w", "standby_w", "ramp_down_s", "ramp_up_s", "can_pause", "takes_power_limit")
    FLEET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RATED_W_FIELD_NUMBER: _ClassVar[int]
    THS_FIELD_NUMBER: _ClassVar[int]
    MIN_W_FIELD_NUMBER: _ClassVar[int]
    STANDBY_W_FIELD_NUMBER: _ClassVar[int]
    RAMP_DOWN_S_FIELD_NUMBER: _ClassVar[int]
    RAMP_UP_S_FIELD_NUMBER: _ClassVar[int]
    CAN_PAUSE_FIELD_NUMBER: _ClassVar[int]
    TAKES_POWER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    fleet_id: str
    model: str
    count: int
    rated_w: float
    ths: float
    min_w: float
    standby_w: float
    ramp_down_s: float
    ramp_up_s: float
    can_pause: bool
    takes_power_limit: bool
    def __init__(self, fleet_id: _Optional[str] = ..., model: _Optional[str] = ..., count: _Optional[int] = ..., rated_w: _Optional[float] = ..., ths: _Optional[float] = ..., min_w: _Optional[float] = ..., standby_w: _Optional[float] = ..., ramp_down_s: _Optional[float] = ..., ramp_up_s: _Optional[float] = ..., can_pause: _Optional[bool] = ..., takes_power_limit: _Optional[bool] = ...) -> None: ...

class SitePower(_message.Message):
    __slots__ = ("interconnect_cap_w", "cooling", "overhead", "gpu_load_w", "gpu_idle_w", "market_node", "meter_disagree_margin")
    INTERCONNECT_CAP_W_FIELD_NUMBER: _ClassVar[int]
    COOLING_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    GPU_LOAD_W_FIELD_NUMBER: _ClassVar[int]
    GPU_IDLE_W_FIELD_NUMBER: _ClassVar[int]
    MARKET_NODE_FIELD_NUMBER: _ClassVar[int]
    METER_DISAGREE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    interconnect_cap_w: float
    cooling: str
    overhead: float
    gpu_load_w: float
    gpu_idle_w: float
    market_node: str
    meter_disagree_margin: float
    def __init__(self, interconnect_cap_w: _Optional[float] = ..., cooling: _Optional[str] = ..., overhead: _Optional[float] = ..., gpu_load_w: _Optional[float] = ..., gpu_idle_w: _Optional[float] = ..., market_node: _Optional[str] = ..., meter_disagree_margin: _Optional[float] = ...) -> None: ...

class Inventory(_message.Message):
    __slots__ = ("gpu_nodes", "fleets", "power")
    GPU_NODES_FIELD_NUMBER: _ClassVar[int]
    FLEETS_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    gpu_nodes: _containers.RepeatedCompositeFieldContainer[GpuNode]
    fleets: _containers.RepeatedCompositeFieldContainer[MinerFleet]
    power: SitePower
    def __init__(self, gpu_nodes: _Optional[_Iterable[_Union[GpuNode, _Mapping]]] = ..., fleets: _Optional[_Iterable[_Union[MinerFleet, _Mapping]]] = ..., power: _Optional[_Union[SitePower, _Mapping]] = ...) -> None: ...
