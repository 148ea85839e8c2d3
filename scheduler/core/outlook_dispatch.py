"""The outlook policy (mining_outlook.plan_outlook) inside a dispatch pass, when the
scheduler's `mining.policy` is "outlook": what it is told and how its levels become
fleet targets.

Owns:
- `OutlookInputs` and `outlook_inputs`: what the state machine hands dispatch
  (SiteInputs.outlook): the last settled real-time price, the day-ahead prices of the
  interval in progress and the coming ones (the node's PRICE forecast events already
  held: a day-ahead feed posts the market's intervals ahead of time, the simulator its
  coming hours), the real-time prices that started in the last hour, and the local hour
  the day-ahead market priced dearest on today's date (where the 4CP window is placed).
- `plan_mining_outlook`: dispatch step 4 with this policy. Levels above each fleet's
  paused floor come from plan_outlook, under the cap (mining_outlook.limit_targets: the
  sum never exceeds the headroom), whole miners, in merit order. The dwell times are
  MiningPolicy's `min_on_s`/`min_off_s`, held on the economics' verdict as plan_mining
  holds them (`FleetState.paying`: whether the fleet wants to run, the cap aside): a
  fleet the verdict switched on stays on `min_on_s` (the cap still wins), one it
  switched off stays off `min_off_s`. The resume pacing and the trimming of raises stay
  dispatch's (its step 6), so the resume rate is not applied twice.

The outlook is stepped in 15-minute intervals (ERCOT's); a dispatch pass may come at any
moment, and what plan_outlook wants depends only on the prices and the fleets' levels
now, so the passes in between ask the same. The 4CP rule reads the local hour and month
of `now` in `MiningPolicy.timezone`. Demand-response events reach the site as cap limits
(the cap lowers the headroom), so no program commitment is passed here. With no price
at all the last price is 0 (as mining.expected_price); a stale feed holds mining at its
floor before this runs (dispatch, price_watch.py). Pure: the events and `now` are inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.mining import FleetState, MiningPlan, MiningPolicy, expected_price
from scheduler.core.mining_outlook import FleetHistory, MiningLimits, Outlook, OutlookPolicy, plan_outlook
from scheduler.core.power import SitePower
from scheduler.core.price_watch import NodePrice

INTERVAL_S = 900.0  # the outlook's interval (plan_outlook counts 0.25 h per interval)
RECENT_S = 3600.0  # "the last hour" of real-time prices (the 4CP rule)
DAY_S = 86400.0  # day-ahead prices started this long ago are kept: the day's dearest hour places the 4CP window
PEAK_MONTHS = (6, 7, 8, 9)  # ERCOT's four coincident peaks: June to September
HOLD = MiningLimits(min_on_steps=2, min_off_steps=2)  # the dwell, as one interval of history (see _history)


@dataclass(frozen=True)
class OutlookInputs:
    last_real_time: float  # the last settled real-time price (or the day-ahead one, or 0)
    day_ahead: tuple[float, ...]  # day-ahead prices of the interval in progress, then the coming ones (INTERVAL_S apart)
    recent_real_time: tuple[float, ...] = ()  # real-time prices started in the last hour, oldest first
    day_ahead_peak_hour: float | None = None  # local hour of the dearest day-ahead price held for today's date (first if tied)


def _prices(events: Iterable[GridEvent], market_node: str, forecast: bool) -> list[GridEvent]:
    return [e for e in events if e.kind == GridEventKind.PRICE and e.forecast == forecast and e.market_node == market_node]


def day_ahead_from(events: Iterable[GridEvent], market_node: str, now: float, steps: int) -> tuple[float, ...]:
    """The forecast in force at now, now + INTERVAL_S, ... (up to `steps` more), stopping at
    the first moment no forecast covers."""
    forecasts = sorted(_prices(events, market_node, True), key=lambda e: e.start)
    out: list[float] = []
    for k in range(steps + 1):
        t = now + k * INTERVAL_S
        in_force = [e for e in forecasts if e.start <= t < e.end]
        if not in_force:
            break
        out.append(in_force[-1].usd_per_mwh)
    return tuple(out)


def recent_price_ids(events: Iterable[GridEvent], now: float) -> set[str]:
    """Real-time price events started in the last hour and day-ahead ones started in the last
    day (kept for the 4CP rule when the rest is forgotten)."""
    return {e.event_id for e in events if e.kind == GridEventKind.PRICE and now - (DAY_S if e.forecast else RECENT_S) < e.start <= now}


def day_ahead_peak_hour(forecasts: Iterable[GridEvent], now: float, timezone: str) -> float | None:
    """The local hour of the dearest day-ahead interval that starts on now's local date (the
    earliest if tied); None when none is held."""
    midnight = datetime.fromtimestamp(now, ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
    day_start, day_end = midnight.timestamp(), (midnight + timedelta(days=1)).timestamp()  # wall-clock days: DST days are 23 or 25 h
    dearest: tuple[float, float] | None = None  # (-price, start): the smallest is the dearest, earliest
    for event in forecasts:
        if day_start <= event.start < day_end and (dearest is None or (-event.usd_per_mwh, event.start) < dearest):
            dearest = (-event.usd_per_mwh, event.start)
    return None if dearest is None else _local(dearest[1], timezone)[0]


def outlook_inputs(
    price: NodePrice, live: Iterable[GridEvent], held: Iterable[GridEvent], market_node: str, now: float, timezone: str = "UTC", steps: int = 8
) -> OutlookInputs:
    """`live`: the events in force or to come (PowerState.events); `held`: every event the state
    still holds (for the real-time prices of the last hour and today's day-ahead prices)."""
    held = list(held)
    last = expected_price(price.forecast, price.real_time)
    ahead = day_ahead_from(live, market_node, now, steps) if price.forecast is not None else ()
    recent = sorted((e for e in _prices(held, market_node, False) if now - RECENT_S < e.start <= now), key=lambda e: e.start)
    # plan_outlook reads day_ahead[0] as the interval before: the one in progress stands in for it.
    return OutlookInputs(
        last, (ahead[0], *ahead) if ahead else (last,), tuple(e.usd_per_mwh for e in recent), day_ahead_peak_hour(_prices(held, market_node, True), now, timezone)
    )


def _history(level_w: float, rated_w: float, state: FleetState, now: float, policy: MiningPolicy) -> FleetHistory:
    """The fleet's level, with the dwell as what was switched in the last interval: power the
    verdict switched on within min_on_s stays on, a fleet it switched off within min_off_s stays off."""
    paying, verdict_at = state.verdict()
    kept_on = paying and state.running and state.since <= verdict_at and now - verdict_at < policy.min_on_s
    kept_off = not paying and now - verdict_at < policy.min_off_s
    return FleetHistory(level_w, (level_w,) if kept_on else (), (rated_w,) if kept_off else ())


def _local(now: float, timezone: str) -> tuple[float, int]:
    """(local hour of day, month) of `now`."""
    moment = datetime.fromtimestamp(now, ZoneInfo(timezone))
    return moment.hour + moment.minute / 60.0 + moment.second / 3600.0, moment.month


def plan_mining_outlook(
    site: SitePower,
    ai_it_w: float,
    hashprice_usd_per_ph_day: float,
    seen: OutlookInputs,
    states: Mapping[str, FleetState],
    targets_w: Mapping[str, float],
    now: float,
    policy: MiningPolicy,
    cap_w: float,
) -> MiningPlan:
    """Power targets for every fleet of `site`; their sum plus `ai_it_w` fits the cap."""
    fleets = sorted(site.fleets, key=lambda f: (f.model.joules_per_th, f.fleet_id))
    rated = [f.max_w - f.standby_w for f in fleets]
    revenue = [f.model.revenue_per_mwh(hashprice_usd_per_ph_day) for f in fleets]
    levels = [max(0.0, targets_w.get(f.fleet_id, f.standby_w) - f.standby_w) for f in fleets]
    fleet_states = [states.get(f.fleet_id, FleetState()) for f in fleets]
    hour, month = _local(now, policy.timezone)
    outlook = Outlook(
        seen.last_real_time,
        seen.day_ahead,
        seen.recent_real_time,
        hour,
        month in PEAK_MONTHS and policy.peak_strike_usd_per_mwh > 0,
        day_ahead_peak_hour=seen.day_ahead_peak_hour,
    )
    rule = OutlookPolicy(
        warmup_h=policy.warmup_s / 3600.0,
        peak_hours=(policy.peak_start_h, policy.peak_end_h),
        peak_around_day_ahead=(policy.peak_before_day_ahead_h, policy.peak_after_day_ahead_h),
        peak_strike_usd_per_mwh=policy.peak_strike_usd_per_mwh,
        limits=HOLD,
    )
    # The economics' verdict: what the fleet wants with the cap and the dwell aside.
    free = replace(rule, limits=MiningLimits())
    wanted = plan_outlook(revenue, rated, [FleetHistory(w) for w in levels], float("inf"), site.overhead, outlook, free)
    history = [_history(w, r, s, now, policy) for w, r, s in zip(levels, rated, fleet_states)]
    allowed = plan_outlook(revenue, rated, history, site.mining_headroom_w(ai_it_w, cap_w), site.overhead, outlook, rule)
    targets: dict[str, float] = {}
    new_states: dict[str, FleetState] = {}
    for fleet, level, want, state in zip(fleets, allowed, wanted, fleet_states):
        above_floor = fleet.whole_miners_w(max(0.0, level))
        targets[fleet.fleet_id] = fleet.standby_w + above_floor
        running, pays = above_floor > 0, want > 0
        paid, verdict_at = state.verdict()
        since = state.since if state.running == running else now
        new_states[fleet.fleet_id] = FleetState(running, since, pays, verdict_at if pays == paid else now)
    return MiningPlan(targets, new_states)
