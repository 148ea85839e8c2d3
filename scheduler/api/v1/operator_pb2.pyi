import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Site(_message.Message):
    __slots__ = ("site_id", "region", "state", "gpus_total", "gpus_free", "active_runs", "last_heartbeat", "drain_reason")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GPUS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FREE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUNS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    region: str
    state: _types_pb2.SiteState
    gpus_total: int
    gpus_free: int
    active_runs: int
    last_heartbeat: _timestamp_pb2.Timestamp
    drain_reason: str
    def __init__(self, site_id: _Optional[str] = ..., region: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.SiteState, str]] = ..., gpus_total: _Optional[int] = ..., gpus_free: _Optional[int] = ..., active_runs: _Optional[int] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., drain_reason: _Optional[str] = ...) -> None: ...

class SiteRun(_message.Message):
    __slots__ = ("run_id", "job_id", "tenant", "state", "gpus")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    tenant: str
    state: _types_pb2.JobState
    gpus: int
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., tenant: _Optional[str] = ..., state: _Optional[_Union[_types_pb2.JobState, str]] = ..., gpus: _Optional[int] = ...) -> None: ...

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
