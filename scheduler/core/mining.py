"""Mining as the flexible load: merit-order dispatch with hysteresis and dwell times.

Mining fills the IT power AI leaves under the cap while it pays. A fleet pays when
its revenue per MWh (hashprice, hashrate, watts: see MinerModel.revenue_per_mwh)
beats the expected power price times the site's overhead (cooling is paid too)
plus a margin. Fleets are filled most efficient
first (fewest J/TH), so the least efficient are curtailed first.

Flapping is avoided two ways, both on the economics' verdict (whether the fleet
pays: `FleetState.paying`), not on whether it hashes: the verdict turns to "pays"
only when the fleet beats the price by `hysteresis` and to "loses" only when it loses
by `hysteresis`, and a verdict is kept for at least `min_off_s` after it turned to
"loses", and for at least `min_on_s` after it turned to "pays" *if the fleet switched
on at that very moment* (the dwell protects the switch the economics made). A fleet
hashes when its verdict is "pays" and the cap leaves it headroom. The cap overrides
both: a fleet always goes down when the budget requires it.

So a fleet that was off only for lack of headroom (its verdict still "pays") comes
back as soon as headroom returns, without a min-off wait, and one switched on because
headroom freed up (its verdict older than the switch) is not held on by min_on_s: the
economics may turn it off at the next pass. Holding such a fleet on would restart the
dwell at every headroom change and keep it hashing at a loss (issue 10).
Pure: time and prices are inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.core.power import SitePower


@dataclass(frozen=True)
class MiningPolicy:
    margin_usd_per_mwh: float = 0.0  # mine only when revenue beats price by this much
    hysteresis_usd_per_mwh: float = 2.0
    min_on_s: float = 0.0
    min_off_s: float = 0.0
    resume_mw_per_min: float = 0.0  # how fast a site's mining may rise (resume.py); 0: at once
    resume_step_s: float = 30.0  # in steps this far apart
    # Which rule sets the fleets' wants: "breakeven" (plan_mining below) or "outlook"
    # (mining_outlook.plan_outlook, run in dispatch by outlook_dispatch.py); the rest serve "outlook".
    policy: str = "breakeven"
    warmup_s: float = 300.0  # a restarted miner draws without hashing this long: what stopping costs
    peak_strike_usd_per_mwh: float = 70.0  # summer evenings: a price this high in the last hour pauses mining (4CP; 0: off)
    peak_before_day_ahead_h: float = 1.0  # the coincident peaks' window: from this long before the hour the day-ahead
    peak_after_day_ahead_h: float = 1.5  # market priced dearest that day to this long after ...
    peak_start_h: float = 18.5  # ... or, when no day-ahead prices are held, these local hours of `timezone`
    peak_end_h: float = 20.5
    timezone: str = "America/Chicago"  # the market's (ERCOT: Central)


@dataclass(frozen=True)
class FleetState:
    running: bool = False  # hashing (above its paused floor)
    since: float = float("-inf")  # when it last switched on or off, for whatever reason
    paying: bool | None = None  # the economics' verdict; None (a state made without one): as `running`
    paying_since: float | None = None  # when the verdict last changed; None: `since`

    def verdict(self) -> tuple[bool, float]:
        """(whether the fleet pays, since when), with the defaults filled in."""
        paying = self.running if self.paying is None else self.paying
        return paying, self.since if self.paying_since is None else self.paying_since


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
    """The economics' verdict: whether a fleet should hash given how much it beats the
    price by (ignoring the cap). min_on_s holds the verdict "pays" only while the fleet
    has been hashing since the verdict turned (it switched on then, not later for headroom)."""
    paying, verdict_at = state.verdict()
    if paying:
        switched_on_by_the_verdict = state.running and state.since <= verdict_at
        if switched_on_by_the_verdict and now - verdict_at < policy.min_on_s:
            return True
        return surplus_usd_per_mwh > -policy.hysteresis_usd_per_mwh
    if now - verdict_at < policy.min_off_s:
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
        pays = wants_to_run(state, surplus, now, policy)
        if pays and headroom > 0:
            above_floor = fleet.whole_miners_w(min(fleet.max_w - fleet.standby_w, headroom))
            headroom -= above_floor
        running = above_floor > 0
        targets[fleet.fleet_id] = fleet.standby_w + above_floor
        paid, verdict_at = state.verdict()
        since = state.since if state.running == running else now
        new_states[fleet.fleet_id] = FleetState(running, since, pays, verdict_at if pays == paid else now)
    return MiningPlan(targets, new_states)
