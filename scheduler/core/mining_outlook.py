"""Mining against what an operator knows at decision time, under the rules that link
one interval to the next.

Owns two pure pieces, both stepped once per price interval:

- `MiningLimits` and `limit_targets`: the rules a fleet's power obeys from one interval
  to the next, applied in one place so every strategy (this policy, the break-even rule,
  a fixed strike, always-on) is held to them alike. Power is IT watts above each fleet's
  paused floor. A fleet is thousands of identical miners, so it is treated as a
  continuum (the clustered unit-commitment form): `starts` and `stops` are the power
  switched on and off in the recent intervals. Rules, highest first:
  the cap (the sum fits the headroom; least efficient gives way first);
  minimum off time (power stopped in the last `min_off_steps` intervals stays off);
  minimum on time (power started in the last `min_on_steps` intervals stays on, except
  what the cap takes back: the cap always wins);
  the site's resume rate (mining rises by at most `resume_w_per_step` per interval, most
  efficient first, like mining.MiningPolicy.resume_mw_per_min).
- `OutlookPolicy` and `plan_outlook`: what each fleet should want. The price it is judged
  against is the last settled real-time price, nudged toward the day-ahead price of the
  interval when the day-ahead market saw a change coming (published the day before, so
  known); no real-time price of the interval itself is used. A fleet that runs stops only
  when the loss it expects over the spike's expected length (the day-ahead intervals of the
  next two hours above its break-even, plus one) beats what stopping costs: the hashing lost
  while it warms up again (optionally a share of the intervals it needs to come back at the
  resume rate). A stopped fleet comes back as soon as it pays. Demand-response commitments
  keep `committed_w` running while the capacity payment beats the loss, and cut it during an
  event; in summer, an interval in the evening peak window after a price of the last hour
  showed the system tight (a coincident-peak candidate, 4CP) curtails everything: one peak
  costs a year's transmission charge on the load, far more than a few intervals' mining.
  The evening window is placed around the hour the day-ahead market priced dearest that
  day (known the day before; in the 2024 ERCOT summer the real-time peaks fell within
  an hour of it), or fixed local hours when no day-ahead prices are held.

Invariant: `limit_targets` never returns a total above the headroom, whatever it is asked.
Pure: prices, headroom and the history are inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MiningLimits:
    resume_w_per_step: float = float("inf")  # IT watts mining may rise by per interval (whole site)
    min_on_steps: int = 1  # intervals power stays on once started (1: no constraint)
    min_off_steps: int = 1  # intervals power stays off once stopped


@dataclass(frozen=True)
class FleetHistory:
    """One fleet's recent switching: its level above the paused floor and the power it
    started and stopped in each of the last intervals (newest last)."""

    level_w: float = 0.0
    starts: tuple[float, ...] = ()
    stops: tuple[float, ...] = ()


def _recent(values: tuple[float, ...], steps: int) -> float:
    """What was switched in the last `steps - 1` intervals (the window of a min time)."""
    return sum(values[len(values) - (steps - 1) :]) if steps > 1 else 0.0


def limit_targets(
    wanted_w: Sequence[float],
    rated_w: Sequence[float],
    history: Sequence[FleetHistory],
    headroom_w: float,
    limits: MiningLimits,
) -> list[float]:
    """Levels above the floor (fleets in merit order, most efficient first) that the
    rules allow nearest to `wanted_w`."""
    k = len(wanted_w)
    upper = [max(0.0, rated_w[j] - _recent(history[j].stops, limits.min_off_steps)) for j in range(k)]
    lower = [min(history[j].level_w, _recent(history[j].starts, limits.min_on_steps), upper[j]) for j in range(k)]
    excess = sum(lower) - headroom_w
    for j in reversed(range(k)):  # the cap beats min on time, least efficient first
        if excess <= 0:
            break
        cut = min(lower[j], excess)
        lower[j] -= cut
        excess -= cut
    levels = [min(max(wanted_w[j], lower[j]), upper[j]) for j in range(k)]
    room = limits.resume_w_per_step
    for j in range(k):  # rises, most efficient first, within the resume rate
        rise = levels[j] - history[j].level_w
        if rise > room:
            levels[j] = history[j].level_w + max(0.0, room)
        room -= max(0.0, levels[j] - history[j].level_w)
    excess = sum(levels) - headroom_w
    for j in reversed(range(k)):
        if excess <= 0:
            break
        cut = min(levels[j] - lower[j] if sum(lower) <= headroom_w else levels[j], excess)
        levels[j] -= cut
        excess -= cut
    return levels


def step_history(history: FleetHistory, level_w: float, limits: MiningLimits) -> FleetHistory:
    """The history after the fleet moved to `level_w` this interval."""
    keep_on, keep_off = max(0, limits.min_on_steps - 1), max(0, limits.min_off_steps - 1)
    started, stopped = max(0.0, level_w - history.level_w), max(0.0, history.level_w - level_w)
    starts = (history.starts + (started,))[-keep_on:] if keep_on else ()
    stops = (history.stops + (stopped,))[-keep_off:] if keep_off else ()
    return FleetHistory(level_w, starts, stops)


@dataclass(frozen=True)
class Program:
    """A demand-response commitment: `committed_w` at the meter available to curtail,
    paid `capacity_usd_per_mw_h` while available and `energy_usd_per_mwh` for what an
    event really curtails (up to the commitment, from the level before the event)."""

    name: str
    committed_w: float
    capacity_usd_per_mw_h: float
    energy_usd_per_mwh: float


@dataclass(frozen=True)
class OutlookPolicy:
    day_ahead_weight: float = 0.0  # how much of the day-ahead market's expected change to add (0.25-0.5 earned less on the ERCOT trace)
    warmup_h: float = 5.0 / 60.0  # a restarted miner draws without hashing this long
    spike_horizon_steps: int = 8  # day-ahead intervals looked at to guess a spike's length
    min_stop_steps: float = 1.0  # a spike is expected to last at least this many intervals
    peak_hours: tuple[float, float] = (18.5, 20.5)  # summer: the peaks' window (local hours) when the day-ahead peak is not known
    peak_around_day_ahead: tuple[float, float] | None = (1.0, 1.5)  # ... else these hours before and after the day-ahead market's dearest interval of the day
    peak_strike_usd_per_mwh: float = 70.0  # ... in which all mining pauses once a price of the last hour reached this
    comeback_weight: float = 0.0  # share of the intervals needed to come back at the resume rate counted as lost (0.2-1 earned less)
    limits: MiningLimits = field(default_factory=MiningLimits)


@dataclass(frozen=True)
class Outlook:
    """What the operator knows when deciding interval t."""

    last_real_time: float  # the last settled real-time price (interval t - 1)
    day_ahead: Sequence[float]  # day-ahead prices of interval t - 1, t, t + 1, ... (published the day before)
    recent_real_time: Sequence[float] = ()  # the settled real-time prices of the last hour
    hour: float = 0.0  # local hour of day of interval t
    peak_season: bool = False  # a month whose coincident peak sets transmission charges (June-September)
    event: bool = False  # a demand-response event is in force
    event_base_w: float = 0.0  # IT watts above floor mining drew just before the event
    day_ahead_peak_hour: float | None = None  # local hour the day-ahead market priced dearest on interval t's day (published the day before)


def expected_price(outlook: Outlook, policy: OutlookPolicy) -> float:
    """The last settled real-time price moved by the day-ahead market's expected change."""
    da = outlook.day_ahead
    change = da[1] - da[0] if len(da) > 1 else 0.0
    return outlook.last_real_time + policy.day_ahead_weight * change


def peak_window(outlook: Outlook, policy: OutlookPolicy) -> tuple[float, float]:
    """The local hours in which a summer coincident peak is feared: around the day-ahead
    market's dearest interval of the day when it is known, else the fixed `peak_hours`."""
    if policy.peak_around_day_ahead is not None and outlook.day_ahead_peak_hour is not None:
        before, after = policy.peak_around_day_ahead
        return outlook.day_ahead_peak_hour - before, outlook.day_ahead_peak_hour + after
    return policy.peak_hours


def peak_risk(outlook: Outlook, policy: OutlookPolicy) -> bool:
    """Whether interval t may be a summer coincident peak: in the season, in the window, and
    a price of the last hour showed the system tight."""
    start, end = peak_window(outlook, policy)
    recent = max([outlook.last_real_time, *outlook.recent_real_time])
    return outlook.peak_season and start <= outlook.hour < end and recent >= policy.peak_strike_usd_per_mwh


def plan_outlook(
    revenue_usd_per_mwh: Sequence[float],
    rated_w: Sequence[float],
    history: Sequence[FleetHistory],
    headroom_w: float,
    overhead: float,
    outlook: Outlook,
    policy: OutlookPolicy,
    program: Program | None = None,
) -> list[float]:
    """Levels above the paused floor for fleets in merit order (most efficient first)."""
    price = expected_price(outlook, policy)
    ahead = list(outlook.day_ahead[1 : 1 + policy.spike_horizon_steps]) or [price]
    limits = policy.limits
    total_rated = max(1e-9, sum(rated_w))
    wanted: list[float] = []
    for j, revenue in enumerate(revenue_usd_per_mwh):
        loss = price * overhead - revenue  # USD per MWh drawn
        if loss <= 0:
            wanted.append(rated_w[j])
            continue
        running = history[j].level_w
        # How long the dear spell should last: the day-ahead intervals above this fleet's break-even.
        dear = sum(1 for p in ahead if p * overhead > revenue) + policy.min_stop_steps
        back_steps = max(1, limits.min_off_steps, total_rated / max(1e-9, limits.resume_w_per_step))
        restart_cost = revenue * policy.warmup_h + policy.comeback_weight * revenue * 0.25 * back_steps / 2.0 * (running / max(1e-9, rated_w[j]))
        stop = loss * 0.25 * dear > restart_cost or running <= 0
        wanted.append(0.0 if stop else running)
    if program is not None:
        wanted = _keep_commitment(wanted, rated_w, revenue_usd_per_mwh, price, overhead, outlook, program)
    if peak_risk(outlook, policy):  # a coincident peak costs more than any commitment pays
        wanted = [0.0] * len(wanted)
    return limit_targets(wanted, rated_w, history, headroom_w, limits)


def _keep_commitment(
    wanted: list[float], rated_w: Sequence[float], revenue: Sequence[float], price: float, overhead: float, outlook: Outlook, program: Program
) -> list[float]:
    """During an event, at least the commitment below the pre-event level; else keep the
    commitment running while its capacity payment beats the loss (most efficient fleets)."""
    committed_it = program.committed_w / overhead
    if outlook.event:
        room = max(0.0, outlook.event_base_w - committed_it)
        out = []
        for w in wanted:
            out.append(min(w, room))
            room -= out[-1]
        return out
    short = committed_it - sum(wanted)
    out = list(wanted)
    for j in range(len(out)):
        if short <= 0:
            break
        if price * overhead - revenue[j] < program.capacity_usd_per_mw_h * overhead:  # both per IT MWh
            add = min(short, rated_w[j] - out[j])
            out[j] += add
            short -= add
    return out
