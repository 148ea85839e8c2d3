"""Conversion of the power side of the wire contract: site power profiles and fleets
from an agent's registration, grid events and their status, a site's power status."""

from __future__ import annotations

import math

from scheduler.api.convert import seconds, timestamp
from scheduler.api.v1 import agent_pb2, operator_pb2, types_pb2
from scheduler.core.errors import InvalidArgument, shown
from scheduler.core.grid import FOREVER, GridEvent, GridEventKind, GridEventRecord
from scheduler.core.power import Cooling, Fleet, MinerModel, SitePower


def fleet_from_proto(msg: types_pb2.MinerFleet) -> Fleet:
    model = MinerModel(
        name=msg.model,
        rated_w=msg.rated_w,
        ths=msg.ths,
        min_w=msg.min_w,
        standby_w=msg.standby_w,
        ramp_down_s=msg.ramp_down_s,
        ramp_up_s=msg.ramp_up_s,
        can_pause=msg.can_pause,
        takes_power_limit=msg.takes_power_limit,
    )
    return Fleet(msg.fleet_id, model, msg.count)


def site_power_from_proto(site_id: str, inventory: types_pb2.Inventory, gpus: int) -> SitePower | None:
    """The site's power profile; None for a site that does not manage power (no cap given)."""
    power = inventory.power
    if power.interconnect_cap_w <= 0:
        if inventory.fleets:
            raise InvalidArgument("a site with miner fleets must give its interconnect_cap_w")
        return None
    problems = []
    for fleet in inventory.fleets:
        if not fleet.fleet_id or fleet.count < 1 or not fleet.rated_w > 0 or not fleet.ths > 0 or not 0 <= fleet.standby_w < fleet.rated_w:
            name = shown(fleet.fleet_id) if fleet.fleet_id else "(no id)"
            problems.append(f"fleet {name}: needs an id, count >= 1, rated_w > 0, ths > 0 and 0 <= standby_w < rated_w")
    if len({f.fleet_id for f in inventory.fleets}) != len(inventory.fleets):
        problems.append("fleet ids must be unique")
    overhead = power.overhead or (Cooling(power.cooling).default_overhead if power.cooling in ("air", "hydro") else 0.0)
    if not 1.0 <= overhead <= 3.0:
        problems.append(f"overhead must be between 1 and 3 (or cooling 'air'/'hydro'), got {power.overhead or power.cooling!r}")
    if not (math.isfinite(power.gpu_load_w) and power.gpu_load_w > power.gpu_idle_w >= 0):
        problems.append("gpu_load_w must be above gpu_idle_w >= 0")
    if not 0 <= power.meter_disagree_margin <= 1:
        problems.append(f"meter_disagree_margin must be between 0 and 1, got {power.meter_disagree_margin!r}")
    if problems:
        raise InvalidArgument("site power profile: " + "; ".join(problems))
    fleets = tuple(fleet_from_proto(f) for f in inventory.fleets)
    return SitePower(
        site_id, power.interconnect_cap_w, overhead, fleets, gpus, gpu_load_w=power.gpu_load_w, gpu_idle_w=power.gpu_idle_w, market_node=power.market_node,
        meter_disagree_margin=power.meter_disagree_margin,
    )


def grid_event_from_proto(msg: operator_pb2.GridEvent, now: float) -> GridEvent:
    if msg.kind not in (1, 2, 3, 4):
        raise InvalidArgument("kind must be CAP_LIMIT, PRICE, EMERGENCY or HASHPRICE")
    start = seconds(msg.start, now, field="start")
    return GridEvent(
        event_id=msg.event_id,
        kind=GridEventKind(msg.kind),
        start=start,
        end=seconds(msg.end, FOREVER, field="end"),
        site_id=msg.site_id,
        cap_w=msg.cap_w,
        respond_by=seconds(msg.respond_by, 0.0, field="respond_by"),
        market_node=msg.market_node,
        usd_per_mwh=msg.usd_per_mwh,
        forecast=msg.forecast,
        hashprice_usd_per_ph_day=msg.hashprice_usd_per_ph_day,
        reason=msg.reason,
        modification=msg.modification,
        notified_at=seconds(msg.notified_at, 0.0, field="notified_at"),
    )


def grid_event_to_proto(event: GridEvent) -> operator_pb2.GridEvent:
    msg = operator_pb2.GridEvent(
        event_id=event.event_id,
        kind=int(event.kind),
        site_id=event.site_id,
        cap_w=event.cap_w,
        start=timestamp(event.start),
        market_node=event.market_node,
        usd_per_mwh=event.usd_per_mwh,
        forecast=event.forecast,
        hashprice_usd_per_ph_day=event.hashprice_usd_per_ph_day,
        reason=event.reason,
        modification=event.modification,
    )
    if event.end != FOREVER:
        msg.end.CopyFrom(timestamp(event.end))
    if event.respond_by:
        msg.respond_by.CopyFrom(timestamp(event.respond_by))
    if event.notified_at:
        msg.notified_at.CopyFrom(timestamp(event.notified_at))
    return msg


def grid_status_to_proto(record: GridEventRecord, now: float, met: bool) -> operator_pb2.GridEventStatus:
    msg = operator_pb2.GridEventStatus(
        event=grid_event_to_proto(record.event),
        state=int(record.event.state(now)),
        received_at=timestamp(record.received_at),
        response=list(record.response),
        met=met,
        end_reason=record.end_reason,
        notice_s=record.notice_s,
        over_cap_s=record.over_cap_s,
        max_excess_w=record.max_excess_w,
        floor_w=record.floor_w,
        below_floor=record.below_floor,
    )
    for name in ("modified_at", "ended_at", "scheduled_end"):
        at = getattr(record, name)
        if at is not None and at != FOREVER:
            getattr(msg, name).CopyFrom(timestamp(at))
    return msg


def fleet_power_to_proto(fleet_id: str, measured_w: float, target_w: float) -> agent_pb2.FleetPower:
    return agent_pb2.FleetPower(fleet_id=fleet_id, measured_w=measured_w, target_w=target_w)
