import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetUsageRequest(_message.Message):
    __slots__ = ("tenant", "to", "max_jobs")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    to: _timestamp_pb2.Timestamp
    max_jobs: int
    def __init__(self, tenant: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_jobs: _Optional[int] = ..., **kwargs) -> None: ...

class UsageFigures(_message.Message):
    __slots__ = ("gpu_hours", "capped_gpu_hours", "it_mwh", "meter_mwh", "curtailed_mwh", "power_caps", "preemptions", "preempted_gpu_hours")
    GPU_HOURS_FIELD_NUMBER: _ClassVar[int]
    CAPPED_GPU_HOURS_FIELD_NUMBER: _ClassVar[int]
    IT_MWH_FIELD_NUMBER: _ClassVar[int]
    METER_MWH_FIELD_NUMBER: _ClassVar[int]
    CURTAILED_MWH_FIELD_NUMBER: _ClassVar[int]
    POWER_CAPS_FIELD_NUMBER: _ClassVar[int]
    PREEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    PREEMPTED_GPU_HOURS_FIELD_NUMBER: _ClassVar[int]
    gpu_hours: float
    capped_gpu_hours: float
    it_mwh: float
    meter_mwh: float
    curtailed_mwh: float
    power_caps: int
    preemptions: int
    preempted_gpu_hours: float
    def __init__(self, gpu_hours: _Optional[float] = ..., capped_gpu_hours: _Optional[float] = ..., it_mwh: _Optional[float] = ..., meter_mwh: _Optional[float] = ..., curtailed_mwh: _Optional[float] = ..., power_caps: _Optional[int] = ..., preemptions: _Optional[int] = ..., preempted_gpu_hours: _Optional[float] = ...) -> None: ...

class JobUsage(_message.Message):
    __slots__ = ("job_id", "figures")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    figures: UsageFigures
    def __init__(self, job_id: _Optional[str] = ..., figures: _Optional[_Union[UsageFigures, _Mapping]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("tenant", "to", "totals", "price_usd_per_mwh", "cost_usd", "credit_usd_per_mwh", "credits_usd", "jobs", "jobs_total", "history_complete", "unknown_sites")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    PRICE_USD_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    CREDIT_USD_PER_MWH_FIELD_NUMBER: _ClassVar[int]
    CREDITS_USD_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    JOBS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    HISTORY_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_SITES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    to: _timestamp_pb2.Timestamp
    totals: UsageFigures
    price_usd_per_mwh: float
    cost_usd: float
    credit_usd_per_mwh: float
    credits_usd: float
    jobs: _containers.RepeatedCompositeFieldContainer[JobUsage]
    jobs_total: int
    history_complete: bool
    unknown_sites: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., totals: _Optional[_Union[UsageFigures, _Mapping]] = ..., price_usd_per_mwh: _Optional[float] = ..., cost_usd: _Optional[float] = ..., credit_usd_per_mwh: _Optional[float] = ..., credits_usd: _Optional[float] = ..., jobs: _Optional[_Iterable[_Union[JobUsage, _Mapping]]] = ..., jobs_total: _Optional[int] = ..., history_complete: _Optional[bool] = ..., unknown_sites: _Optional[_Iterable[str]] = ..., **kwargs) -> None: ...
