import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_STARTING: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_STOPPED: _ClassVar[RunState]
    RUN_STATE_UNKNOWN: _ClassVar[RunState]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_STARTING: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_STOPPED: RunState
RUN_STATE_UNKNOWN: RunState

class RunStatus(_message.Message):
    __slots__ = ("run_id", "state", "message", "checkpoint", "requests_per_s", "replicas", "endpoint")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_S_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: RunState
    message: str
    checkpoint: _types_pb2.Checkpoint
    requests_per_s: float
    replicas: int
    endpoint: str
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., message: _Optional[str] = ..., checkpoint: _Optional[_Union[_types_pb2.Checkpoint, _Mapping]] = ..., requests_per_s: _Optional[float] = ..., replicas: _Optional[int] = ..., endpoint: _Optional[str] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("site_id", "region", "inventory", "runs", "agent_version")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    region: str
    inventory: _types_pb2.Inventory
    runs: _containers.RepeatedCompositeFieldContainer[RunStatus]
    agent_version: str
    def __init__(self, site_id: _Optional[str] = ..., region: _Optional[str] = ..., inventory: _Optional[_Union[_types_pb2.Inventory, _Mapping]] = ..., runs: _Optional[_Iterable[_Union[RunStatus, _Mapping]]] = ..., agent_version: _Optional[str] = ...) -> None: ...

class FleetPower(_message.Message):
    __slots__ = ("fleet_id", "measured_w", "target_w")
    FLEET_ID_FIELD_NUMBER: _ClassVar[int]
    MEASURED_W_FIELD_NUMBER: _ClassVar[int]
    TARGET_W_FIELD_NUMBER: _ClassVar[int]
    fleet_id: str
    measured_w: float
    target_w: float
    def __init__(self, fleet_id: _Optional[str] = ..., measured_w: _Optional[float] = ..., target_w: _Optional[float] = ...) -> None: ...

class LocalAction(_message.Message):
    __slots__ = ("at", "what")
    AT_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    what: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., what: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("runs", "measured_power_w", "fleets", "gpu_power_w", "meter_power_w", "local_actions", "computed_meter_power_w", "meter_source")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    MEASURED_POWER_W_FIELD_NUMBER: _ClassVar[int]
    FLEETS_FIELD_NUMBER: _ClassVar[int]
    GPU_POWER_W_FIELD_NUMBER: _ClassVar[int]
    METER_POWER_W_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_METER_POWER_W_FIELD_NUMBER: _ClassVar[int]
    METER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunStatus]
    measured_power_w: float
    fleets: _containers.RepeatedCompositeFieldContainer[FleetPower]
    gpu_power_w: float
    meter_power_w: float
    local_actions: _containers.RepeatedCompositeFieldContainer[LocalAction]
    computed_meter_power_w: float
    meter_source: _types_pb2.MeterSource
    def __init__(self, runs: _Optional[_Iterable[_Union[RunStatus, _Mapping]]] = ..., measured_power_w: _Optional[float] = ..., fleets: _Optional[_Iterable[_Union[FleetPower, _Mapping]]] = ..., gpu_power_w: _Optional[float] = ..., meter_power_w: _Optional[float] = ..., local_actions: _Optional[_Iterable[_Union[LocalAction, _Mapping]]] = ..., computed_meter_power_w: _Optional[float] = ..., meter_source: _Optional[_Union[_types_pb2.MeterSource, str]] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "run_event", "nodes_changed", "run_logs")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RUN_EVENT_FIELD_NUMBER: _ClassVar[int]
    NODES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    RUN_LOGS_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    run_event: RunStatus
    nodes_changed: NodesChanged
    run_logs: RunLogs
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., run_event: _Optional[_Union[RunStatus, _Mapping]] = ..., nodes_changed: _Optional[_Union[NodesChanged, _Mapping]] = ..., run_logs: _Optional[_Union[RunLogs, _Mapping]] = ...) -> None: ...

class RunLogs(_message.Message):
    __slots__ = ("request_id", "run_id", "text", "truncated", "error", "missing")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    run_id: str
    text: str
    truncated: bool
    error: str
    missing: bool
    def __init__(self, request_id: _Optional[str] = ..., run_id: _Optional[str] = ..., text: _Optional[str] = ..., truncated: _Optional[bool] = ..., error: _Optional[str] = ..., missing: _Optional[bool] = ...) -> None: ...

class NodesChanged(_message.Message):
    __slots__ = ("gpu_nodes",)
    GPU_NODES_FIELD_NUMBER: _ClassVar[int]
    gpu_nodes: _containers.RepeatedCompositeFieldContainer[_types_pb2.GpuNode]
    def __init__(self, gpu_nodes: _Optional[_Iterable[_Union[_types_pb2.GpuNode, _Mapping]]] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("heartbeat_interval_s",)
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    def __init__(self, heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class PowerTargets(_message.Message):
    __slots__ = ("fleets", "cap_w", "cap_event_active", "cause")
    FLEETS_FIELD_NUMBER: _ClassVar[int]
    CAP_W_FIELD_NUMBER: _ClassVar[int]
    CAP_EVENT_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    fleets: _containers.RepeatedCompositeFieldContainer[FleetPower]
    cap_w: float
    cap_event_active: bool
    cause: str
    def __init__(self, fleets: _Optional[_Iterable[_Union[FleetPower, _Mapping]]] = ..., cap_w: _Optional[float] = ..., cap_event_active: _Optional[bool] = ..., cause: _Optional[str] = ...) -> None: ...

class RunPowerCap(_message.Message):
    __slots__ = ("run_id", "power_fraction", "cause")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    POWER_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    power_fraction: float
    cause: str
    def __init__(self, run_id: _Optional[str] = ..., power_fraction: _Optional[float] = ..., cause: _Optional[str] = ...) -> None: ...

class StartRun(_message.Message):
    __slots__ = ("run_id", "job_id", "tenant", "spec", "checkpoint_uri", "replicas")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_URI_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    tenant: str
    spec: _types_pb2.JobSpec
    checkpoint_uri: str
    replicas: int
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., tenant: _Optional[str] = ..., spec: _Optional[_Union[_types_pb2.JobSpec, _Mapping]] = ..., checkpoint_uri: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class StopRun(_message.Message):
    __slots__ = ("run_id", "reason", "checkpoint_grace_s")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_GRACE_S_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    reason: str
    checkpoint_grace_s: int
    def __init__(self, run_id: _Optional[str] = ..., reason: _Optional[str] = ..., checkpoint_grace_s: _Optional[int] = ...) -> None: ...

class ScaleRun(_message.Message):
    __slots__ = ("run_id", "replicas", "cause")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    replicas: int
    cause: str
    def __init__(self, run_id: _Optional[str] = ..., replicas: _Optional[int] = ..., cause: _Optional[str] = ...) -> None: ...

class SchedulerMessage(_message.Message):
    __slots__ = ("registered", "start_run", "stop_run", "power_targets", "run_power_cap", "scale_run", "fetch_run_logs")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    START_RUN_FIELD_NUMBER: _ClassVar[int]
    STOP_RUN_FIELD_NUMBER: _ClassVar[int]
    POWER_TARGETS_FIELD_NUMBER: _ClassVar[int]
    RUN_POWER_CAP_FIELD_NUMBER: _ClassVar[int]
    SCALE_RUN_FIELD_NUMBER: _ClassVar[int]
    FETCH_RUN_LOGS_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    start_run: StartRun
    stop_run: StopRun
    power_targets: PowerTargets
    run_power_cap: RunPowerCap
    scale_run: ScaleRun
    fetch_run_logs: FetchRunLogs
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., start_run: _Optional[_Union[StartRun, _Mapping]] = ..., stop_run: _Optional[_Union[StopRun, _Mapping]] = ..., power_targets: _Optional[_Union[PowerTargets, _Mapping]] = ..., run_power_cap: _Optional[_Union[RunPowerCap, _Mapping]] = ..., scale_run: _Optional[_Union[ScaleRun, _Mapping]] = ..., fetch_run_logs: _Optional[_Union[FetchRunLogs, _Mapping]] = ...) -> None: ...

class FetchRunLogs(_message.Message):
    __slots__ = ("request_id", "run_id", "tail_lines", "max_bytes")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    run_id: str
    tail_lines: int
    max_bytes: int
    def __init__(self, request_id: _Optional[str] = ..., run_id: _Optional[str] = ..., tail_lines: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...
