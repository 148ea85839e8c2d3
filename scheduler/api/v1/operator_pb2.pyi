import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import agent_pb2 as _agent_pb2
from . import logs_pb2 as _logs_pb2
from . import types_pb2 as _types_pb2
from . import usage_pb2 as _usage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GridEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRID_EVENT_KIND_UNSPECIFIED: _ClassVar[GridEventKind]
    GRID_EVENT_KIND_CAP_LIMIT: _ClassVar[GridEventKind]
    GRID_EVENT_KIND_PRICE: _ClassVar[GridEventKind]
    GRID_EVENT_KIND_EMERGENCY: _ClassVar[GridEventKind]
    GRID_EVENT_KIND_HASHPRICE: _ClassVar[GridEventKind]

class GridEventState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRID_EVENT_STATE_UNSPECIFIED: _ClassVar[GridEventState]
    GRID_EVENT_STATE_UPCOMING: _ClassVar[GridEventState]
    GRID_EVENT_STATE_ACTIVE: _ClassVar[GridEventState]
    GRID_EVENT_STATE_ENDED: _ClassVar[GridEventState]
GRID_EVENT_KIND_UNSPECIFIED: GridEventKind
GRID_EVENT_KIND_CAP_LIMIT: GridEventKind
GRID_EVENT_KIND_PRICE: GridEventKind
GRID_EVENT_KIND_EMERGENCY: GridEventKind
GRID_EVENT_KIND_HASHPRICE: GridEventKind
GRID_EVENT_STATE_UNSPECIFIED: GridEventState
GRID_EVENT_STATE_UPCOMING: GridEventState
GRID_EVENT_STATE_ACTIVE: GridEventState
GRID_EVENT_STATE_ENDED: GridEventState

class GridEvent(_message.Message):
    __slots__ = ("event_id", "kind", "site_id", "cap_w", "start", "end", "respond_by", "market_node", "usd_per_mwh", "forecast", "hashprice_usd_per_ph_day", "reason", "modification", "notified_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    CAP_W_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    RESPOND_BY_FIELD_NUMBER: _ClassVar[int]
    MARKET_NODE_FIELD_NUMBER: _ClassVar[int]
    USD_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    FORECAST_FIELD_NUMBER: _ClassVar[int]
    HASHPRICE_USD_PER_PH_DAY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODIFICATION_FIELD_NUMBER: _ClassVar[int]
    NOTIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    kind: GridEventKind
    site_id: str
    cap_w: float
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    respond_by: _timestamp_pb2.Timestamp
    market_node: str
    usd_per_mwh: float
    forecast: bool
    hashprice_usd_per_ph_day: float
    reason: str
    modification: int
    notified_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., kind: _Optional[_Union[GridEventKind, str]] = ..., site_id: _Optional[str] = ..., cap_w: _Optional[float] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., respond_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., market_node: _Optional[str] = ..., usd_per_mwh: _Optional[float] = ..., forecast: _Optional[bool] = ..., hashprice_usd_per_ph_day: _Optional[float] = ..., reason: _Optional[str] = ..., modification: _Optional[int] = ..., notified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EndGridEventRequest(_message.Message):
    __slots__ = ("event_id", "end", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    end: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class GridEventStatus(_message.Message):
    __slots__ = ("event", "state", "received_at", "response", "met", "modified_at", "ended_at", "scheduled_end", "end_reason", "notice_s", "over_cap_s", "max_excess_w", "floor_w", "below_floor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    MET_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_END_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    NOTICE_S_FIELD_NUMBER: _ClassVar[int]
    OVER_CAP_S_FIELD_NUMBER: _ClassVar[int]
    MAX_EXCESS_W_FIELD_NUMBER: _ClassVar[int]
    FLOOR_W_FIELD_NUMBER: _ClassVar[int]
    BELOW_FLOOR_FIELD_NUMBER: _ClassVar[int]
    event: GridEvent
    state: GridEventState
    received_at: _timestamp_pb2.Timestamp
    response: _containers.RepeatedScalarFieldContainer[str]
    met: bool
    modified_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    scheduled_end: _timestamp_pb2.Timestamp
    end_reason: str
    notice_s: float
    over_cap_s: float
    max_excess_w: float
    floor_w: float
    below_floor: bool
    def __init__(self, event: _Optional[_Union[GridEvent, _Mapping]] = ..., state: _Optional[_Union[GridEventState, str]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., response: _Optional[_Iterable[str]] = ..., met: _Optional[bool] = ..., modified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scheduled_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_reason: _Optional[str] = ..., notice_s: _Optional[float] = ..., over_cap_s: _Optional[float] = ..., max_excess_w: _Optional[float] = ..., floor_w: _Optional[float] = ..., below_floor: _Optional[bool] = ...) -> None: ...

class ListGridEventsRequest(_message.Message):
    __slots__ = ("site_id", "active_only")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    active_only: bool
    def __init__(self, site_id: _Optional[str] = ..., active_only: _Optional[bool] = ...) -> None: ...

class ListGridEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[GridEventStatus]
    def __init__(self, events: _Optional[_Iterable[_Union[GridEventStatus, _Mapping]]] = ...) -> None: ...

class SitePowerStatus(_message.Message):
    __slots__ = ("cap_w", "interconnect_cap_w", "committed_w", "measured_w", "ai_w", "mining_w", "mining_target_w", "price_usd_per_mwh", "emergency", "fleets", "ai_it_w", "mining_it_w", "overhead_w", "computed_w", "meter_source", "meter_disagrees")
    CAP_W_FIELD_NUMBER: _ClassVar[int]
    INTERCONNECT_CAP_W_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_W_FIELD_NUMBER: _ClassVar[int]
    MEASURED_W_FIELD_NUMBER: _ClassVar[int]
    AI_W_FIELD_NUMBER: _ClassVar[int]
    MINING_W_FIELD_NUMBER: _ClassVar[int]
    MINING_TARGET_W_FIELD_NUMBER: _ClassVar[int]
    PRICE_USD_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_FIELD_NUMBER: _ClassVar[int]
    FLEETS_FIELD_NUMBER: _ClassVar[int]
    AI_IT_W_FIELD_NUMBER: _ClassVar[int]
    MINING_IT_W_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_W_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_W_FIELD_NUMBER: _ClassVar[int]
    METER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    METER_DISAGREES_FIELD_NUMBER: _ClassVar[int]
    cap_w: float
    interconnect_cap_w: float
    committed_w: float
    measured_w: float
    ai_w: float
    mining_w: float
    mining_target_w: float
    price_usd_per_mwh: float
    emergency: bool
    fleets: _containers.RepeatedCompositeFieldContainer[_agent_pb2.FleetPower]
    ai_it_w: float
    mining_it_w: float
    overhead_w: float
    computed_w: float
    meter_source: _types_pb2.MeterSource
    meter_disagrees: bool
    def __init__(self, cap_w: _Optional[float] = ..., interconnect_cap_w: _Optional[float] = ..., committed_w: _Optional[float] = ..., measured_w: _Optional[float] = ..., ai_w: _Optional[float] = ..., mining_w: _Optional[float] = ..., mining_target_w: _Optional[float] = ..., price_usd_per_mwh: _Optional[float] = ..., emergency: _Optional[bool] = ..., fleets: _Optional[_Iterable[_Union[_agent_pb2.FleetPower, _Mapping]]] = ..., ai_it_w: _Optional[float] = ..., mining_it_w: _Optional[float] = ..., overhead_w: _Optional[float] = ..., computed_w: _Optional[float] = ..., meter_source: _Optional[_Union[_types_pb2.MeterSource, str]] = ..., meter_disagrees: _Optional[bool] = ...) -> None: ...

class Site(_message.Message):
    __slots__ = ("site_id", "region", "state", "gpus_total", "gpus_free", "active_runs", "last_heartbeat", "drain_reason", "power")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GPUS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FREE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUNS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    region: str
    state: _types_pb2.SiteState
    gpus_total: int
    gpus_free: int
    active_runs: int
    last_heartbeat: _timestamp_pb2.Timestamp
    drain_reason: str
    power: SitePowerStatus
    def __init__(self, site_id: _Optional[str] = ..., region: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.SiteState, str]] = ..., gpus_total: _Optional[int] = ..., gpus_free: _Optional[int] = ..., active_runs: _Optional[int] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., drain_reason: _Optional[str] = ..., power: _Optional[_Union[SitePowerStatus, _Mapping]] = ...) -> None: ...

class SiteRun(_message.Message):
    __slots__ = ("run_id", "job_id", "tenant", "state", "gpus", "power_fraction")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    POWER_FRACTION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    tenant: str
    state: _types_pb2.JobState
    gpus: int
    power_fraction: float
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., tenant: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.JobState, str]] = ..., gpus: _Optional[int] = ..., power_fraction: _Optional[float] = ...) -> None: ...

class SiteDetail(_message.Message):
    __slots__ = ("site", "inventory", "runs")
    SITE_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    site: Site
    inventory: _types_pb2.Inventory
    runs: _containers.RepeatedCompositeFieldContainer[SiteRun]
    def __init__(self, site: _Optional[_Union[Site, _Mapping]] = ..., inventory: _Optional[_Union[_types_pb2.Inventory, _Mapping]] = ..., runs: _Optional[_Iterable[_Union[SiteRun, _Mapping]]] = ...) -> None: ...

class ListSitesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSitesResponse(_message.Message):
    __slots__ = ("sites",)
    SITES_FIELD_NUMBER: _ClassVar[int]
    sites: _containers.RepeatedCompositeFieldContainer[Site]
    def __init__(self, sites: _Optional[_Iterable[_Union[Site, _Mapping]]] = ...) -> None: ...

class GetSiteRequest(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class DrainSiteRequest(_message.Message):
    __slots__ = ("site_id", "reason")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    reason: str
    def __init__(self, site_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UndrainSiteRequest(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class WatchSitesRequest(_message.Message):
    __slots__ = ("min_interval_s", "refresh_s")
    MIN_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    REFRESH_S_FIELD_NUMBER: _ClassVar[int]
    min_interval_s: float
    refresh_s: float
    def __init__(self, min_interval_s: _Optional[float] = ..., refresh_s: _Optional[float] = ...) -> None: ...

class PowerSnapshot(_message.Message):
    __slots__ = ("at", "sites", "grid_events", "jobs", "version")
    AT_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    GRID_EVENTS_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    sites: _containers.RepeatedCompositeFieldContainer[SiteDetail]
    grid_events: _containers.RepeatedCompositeFieldContainer[GridEventStatus]
    jobs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Job]
    version: int
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sites: _Optional[_Iterable[_Union[SiteDetail, _Mapping]]] = ..., grid_events: _Optional[_Iterable[_Union[GridEventStatus, _Mapping]]] = ..., jobs: _Optional[_Iterable[_Union[_types_pb2.Job, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class ReloadConfigRequest(_message.Message):
    __slots__ = ("dry_run",)
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    def __init__(self, dry_run: _Optional[bool] = ...) -> None: ...

class ReloadConfigResponse(_message.Message):
    __slots__ = ("changed_sections", "refused", "config_sha256", "applied_at")
    CHANGED_SECTIONS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SHA256_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    changed_sections: _containers.RepeatedScalarFieldContainer[str]
    refused: _containers.RepeatedScalarFieldContainer[str]
    config_sha256: str
    applied_at: _timestamp_pb2.Timestamp
    def __init__(self, changed_sections: _Optional[_Iterable[str]] = ..., refused: _Optional[_Iterable[str]] = ..., config_sha256: _Optional[str] = ..., applied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
