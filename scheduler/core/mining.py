"""Mining as the flexible load: merit-order dispatch with hysteresis and dwell times.

Mining fills the IT power AI leaves under the cap while it pays. A fleet pays when
its revenue per MWh (hashprice, hashrate, watts: see MinerModel.revenue_per_mwh)
beats the expected power price times the site's overhead (cooling is paid too)
plus a margin. Fleets are filled most efficient
first (fewest J/TH), so the least efficient are curtailed first.

Flapping is avoided two ways: a fleet switches on only when it beats the price by
`hysteresis` and off only when it loses by `hysteresis`, and it keeps a state for
at least `min_on_s` / `min_off_s`. The cap overrides both: a fleet always goes down
when the budget requires it. Pure: time and prices are inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.core.power import SitePower


@dataclass(frozen=True)
class MiningPolicy:
    margin_usd_per_mwh: float = 0.0  # mine only when revenue beats price by this much
    hysteresis_usd_per_mwh: float = 2.0
    min_on_s: float = 0.0
    min_off_s: float = 0.0


@dataclass(frozen=True)
class FleetState:
    running: bool = False
    since: float = float("-inf")  # when it last switched


@dataclass(frozen=True)
class MiningPlan:
    targets_w: dict[str, float]  # fleet_id -> power target (paused fleets: their standby draw)
    states: dict[str, FleetState]

    @property
    def total_w(self) -> float:
        return sum(self.targets_w.values())


def expected_price(day_ahead: float | None, last_real_time: float | None) -> float:
    """The price the next interval is dispatched against: the last real-time price seen
    (prices persist: spikes last several intervals); the day-ahead price when none yet."""
    if last_real_time is not None:
        return last_real_time
    return day_ahead if day_ahead is not None else 0.0


def wants_to_run(state: FleetState, surplus_usd_per_mwh: float, now: float, policy: MiningPolicy) -> bool:
    """Whether a fleet should hash given how much it beats the price by (ignoring the cap)."""
    if state.running:
        if now - state.since < policy.min_on_s:
            return True
        return surplus_usd_per_mwh > -policy.hysteresis_usd_per_mwh
    if now - state.since < policy.min_off_s:
        return False
    return surplus_usd_per_mwh > policy.hysteresis_usd_per_mwh


def plan_mining(
    site: SitePower,
    ai_it_w: float,
    price_usd_per_mwh: float,
    hashprice_usd_per_ph_day: float,
    states: Mapping[str, FleetState],
    now: float,
    policy: MiningPolicy = MiningPolicy(),
    cap_w: float | None = None,
) -> MiningPlan:
    """Power targets for every fleet of `site`; their sum plus `ai_it_w` fits the cap."""
    headroom = site.mining_headroom_w(ai_it_w, cap_w)
    targets: dict[str, float] = {}
    new_states: dict[str, FleetState] = {}
    for fleet in sorted(site.fleets, key=lambda f: (f.model.joules_per_th, f.fleet_id)):
        state = states.get(fleet.fleet_id, FleetState())
        # Each MWh a miner draws costs overhead x price at the meter (cooling included).
        surplus = fleet.model.revenue_per_mwh(hashprice_usd_per_ph_day) - price_usd_per_mwh * site.overhead - policy.margin_usd_per_mwh
        above_floor = 0.0
        if wants_to_run(state, surplus, now, policy) and headroom > 0:
            above_floor = min(fleet.max_w - fleet.standby_w, headroom)
            if not fleet.model.takes_power_limit:  # whole miners only
                per_miner = fleet.model.rated_w - fleet.model.standby_w
                above_floor = per_miner * int(above_floor // per_miner)
            headroom -= above_floor
        running = above_floor > 0
        targets[fleet.fleet_id] = fleet.standby_w + above_floor
        new_states[fleet.fleet_id] = state if state.running == running else dataclasses.replace(state, running=running, since=now)
    return MiningPlan(targets, new_states)
