"""Helpers shared by integration test modules (not a test module): grid events to post
over OperatorService."""

from __future__ import annotations

from scheduler.api.convert import timestamp
from scheduler.api.v1 import operator_pb2


def cap_cut(event_id: str, cap_w: float, start: float, end: float) -> operator_pb2.GridEvent:
    """A grid cap cut on tx-1 (the power-managed site of `ray_system`) from `start` to `end` (epoch seconds)."""
    return operator_pb2.GridEvent(
        event_id=event_id,
        kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
        site_id="tx-1",
        cap_w=cap_w,
        start=timestamp(start),
        end=timestamp(end),
        reason="integration test",
    )
