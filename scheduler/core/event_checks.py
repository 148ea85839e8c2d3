"""How a site's readings meet the grid events in force: every reading taken while a cap
limit or an emergency must be met is counted against it (readings in force, breaches,
time over the cap and the largest excess, reading to reading), and the first reading
that meets an event stamps its response time.

Pure: the records are updated in the mapping given; what must be persisted and logged
goes into the decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, MutableMapping

from scheduler.core.decisions import Decision
from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord, clock_text, with_lines
from scheduler.core.power import SitePower, watts_text
from scheduler.core.power_stimuli import PowerReading

TOLERANCE_W = 1.0


def counted(record: GridEventRecord, short: bool, excess_w: float, now: float) -> GridEventRecord:
    """A reading in force counted against a record: `short` (a breach), and how far the meter
    was over a cap limit (`excess_w`; 0 for an emergency)."""
    since = record.last_read_at if record.last_read_at is not None else record.event.deadline
    return dataclasses.replace(
        record,
        readings_in_force=record.readings_in_force + 1,
        breaches=record.breaches + short,
        last_read_at=now,
        over_cap_s=record.over_cap_s + (max(0.0, now - since) if short else 0.0),
        max_excess_w=max(record.max_excess_w, excess_w),
    )


def check_reading(
    grid: MutableMapping[str, GridEventRecord], events: Iterable[GridEvent], site_id: str, power: SitePower, reading: PowerReading, lead_s: float, now: float, decision: Decision
) -> None:
    for event in events:
        if event.site_id != site_id or event.kind not in (GridEventKind.CAP_LIMIT, GridEventKind.EMERGENCY):
            continue
        record = grid[event.event_id]
        if event.kind == GridEventKind.CAP_LIMIT:
            excess = max(0.0, reading.meter_w - event.cap_w)
            short = excess > TOLERANCE_W
            what = f"meter {watts_text(reading.meter_w)} over the cap {watts_text(event.cap_w)}"
        else:
            floor = {f.fleet_id: f.standby_w for f in power.fleets}
            excess = 0.0
            short = any(measured > floor.get(fid, 0.0) + TOLERANCE_W for fid, (measured, _) in reading.fleets.items())
            what = "mining still above its paused floor"
        deadline = event.deadline if event.kind == GridEventKind.CAP_LIMIT else event.start + lead_s
        first_met = not short and record.met_at is None and now < event.end
        if first_met:
            record = grid[event.event_id] = dataclasses.replace(record, met_at=now)
        if not deadline <= now < event.end:
            if first_met:
                decision.grid.append(record)
            continue
        updated = grid[event.event_id] = counted(record, short, excess, now)
        if short:
            decision.notes.append(("warning", f"grid event {event.event_id} not met at {site_id}: {what}", {"site_id": site_id, "grid_event_id": event.event_id}))
            if record.breaches == 0:
                updated = grid[event.event_id] = with_lines(updated, [f"{clock_text(now)} NOT MET: {what}"])
        if short or record.readings_in_force == 0 or first_met:
            decision.grid.append(updated)
