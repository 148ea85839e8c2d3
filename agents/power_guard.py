"""Hold the line: what the agent does to mining by itself to keep the site under its
cap. Pure: readings in, lowered fleet targets and a description out.

Two rules, checked every guard tick whether the stream to the scheduler is up or not:

(b) Cut off during a cap event: when the stream is down and the last PowerTargets
    said a cap event is active, every fleet goes to its paused floor (standby) and
    stays there; the guard never raises a target, so only the scheduler's next
    PowerTargets, once it is back, lifts mining again.
(a) Over the cap: when the site's IT power times the overhead (what the meter sees)
    exceeds the cap in force, or will within `horizon_s` at the fleets' ramps (the
    next guard pass comes no sooner), mining is curtailed least efficient fleet
    first (highest J/TH, the reverse of the scheduler's fill order), each no lower
    than its standby draw, just enough that the GPUs' power plus the fleets'
    *targets* fit. Targets, not readings, are cut to fit: a fleet heads to its
    target at its fastest ramp, so targets that fit are the quickest way back under
    the cap; a reading over the cap while the targets fit is a ramp-down already
    under way, and lowering targets further would curtail more without getting
    there sooner. Fleets that take no power limit are cut in whole miners. The agent
    never caps GPUs itself: if mining at its floor is not enough, it says so.

With a revenue meter (`metered_w`, a fresh reading), the meter is the truth at the
point of interconnect: what it reads above the computed figure (IT x overhead from the
GPUs' and fleets' readings: auxiliary loads, an overhead higher than configured) is
load the agent cannot control, so it comes off the budget before the targets are fit,
and "over the cap" is judged on the metered figure. A meter reading below the computed
figure is not taken as room: the computed figure stays the bound (the scheduler alarms
when the two disagree).

A cap of 0 (or less) means none: the site's power is not managed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from scheduler.core.power import Fleet, curtail_least_efficient_first, ramp

TOLERANCE_W = 1.0


@dataclass(frozen=True)
class FleetReading:
    fleet: Fleet
    measured_w: float
    target_w: float  # the target it ramps to now


@dataclass(frozen=True)
class GuardResult:
    targets_w: dict[str, float] = field(default_factory=dict)  # lowered fleets only: fleet_id -> new target
    action: str = ""  # what was done and why; "" when nothing

    @property
    def acted(self) -> bool:
        return bool(self.targets_w)


def _power(watts: float) -> str:
    if abs(watts) >= 1e6:
        return f"{watts / 1e6:,.3f} MW"
    if abs(watts) >= 1e4:
        return f"{watts / 1e3:,.1f} kW"
    return f"{watts:,.0f} W"


def _changes(before: dict[str, float], after: dict[str, float]) -> str:
    return ", ".join(f"{fleet_id} {_power(before[fleet_id])} -> {_power(after[fleet_id])}" for fleet_id in after)


def curtail_to_fit(fleets: Sequence[FleetReading], targets_w: dict[str, float], excess_w: float) -> tuple[dict[str, float], float]:
    """Lower targets by `excess_w` in all, least efficient fleet first, none below standby
    (the scheduler ladder's rule: scheduler.core.power.curtail_least_efficient_first).
    Returns the lowered fleets' new targets and the excess left (> 0: mining alone cannot fit)."""
    return curtail_least_efficient_first((r.fleet for r in fleets), targets_w, excess_w, tolerance_w=TOLERANCE_W)


def hold_the_line(
    cap_w: float,
    overhead: float,
    gpu_it_w: float,
    fleets: Sequence[FleetReading],
    stream_up: bool,
    cap_event_active: bool,
    horizon_s: float = 0.0,
    metered_w: float | None = None,
) -> GuardResult:
    """New targets for the fleets the agent lowers by itself, and what it did
    (`metered_w`: the meter's fresh reading, None without one; see the module docstring)."""
    before = {r.fleet.fleet_id: r.target_w for r in fleets}
    targets = dict(before)
    actions: list[str] = []

    if not stream_up and cap_event_active:
        floored = {r.fleet.fleet_id: r.fleet.standby_w for r in fleets if r.target_w > r.fleet.standby_w + TOLERANCE_W}
        if floored:
            targets.update(floored)
            actions.append(f"stream to the scheduler lost during a cap event: mining held at its paused floor ({_changes(before, floored)})")

    if cap_w > 0:
        computed_w = (gpu_it_w + sum(r.measured_w for r in fleets)) * overhead
        unmodeled_w = max(0.0, metered_w - computed_w) if metered_w is not None else 0.0
        budget_it_w = (cap_w - unmodeled_w) / overhead
        planned_it_w = gpu_it_w + sum(targets.values())
        meter_w = computed_w + unmodeled_w
        soon_it_w = gpu_it_w + sum(ramp(r.fleet, r.measured_w, targets[r.fleet.fleet_id], horizon_s) for r in fleets)
        over = max(meter_w, soon_it_w * overhead + unmodeled_w) > cap_w + TOLERANCE_W * overhead
        excess = planned_it_w - budget_it_w
        if over and excess > TOLERANCE_W:
            lowered, left = curtail_to_fit(fleets, targets, excess)
            if lowered:
                where = "over the cap" if meter_w > cap_w + TOLERANCE_W * overhead else "about to go over the cap"
                text = (
                    f"{where} {_power(cap_w)} (meter {_power(meter_w)}, heading to {_power(planned_it_w * overhead + unmodeled_w)}): "
                    f"mining curtailed least efficient first ({_changes(targets, lowered)})"
                )
                targets.update(lowered)
                if left > TOLERANCE_W:
                    text += f"; still {_power(left * overhead)} over with that mining paused: the GPUs need the scheduler's caps"
                actions.append(text)

    changed = {fleet_id: w for fleet_id, w in targets.items() if w < before[fleet_id] - 1e-9}
    return GuardResult(changed, "; ".join(actions))
