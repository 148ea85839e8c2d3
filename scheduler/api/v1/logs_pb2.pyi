import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetJobLogsRequest(_message.Message):
    __slots__ = ("job_id", "tail_lines", "max_bytes")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    tail_lines: int
    max_bytes: int
    def __init__(self, job_id: _Optional[str] = ..., tail_lines: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class JobLogs(_message.Message):
    __slots__ = ("job_id", "run_id", "site_id", "text", "truncated", "fetched_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    run_id: str
    site_id: str
    text: str
    truncated: bool
    fetched_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., run_id: _Optional[str] = ..., site_id: _Optional[str] = ..., text: _Optional[str] = ..., truncated: _Optional[bool] = ..., fetched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
