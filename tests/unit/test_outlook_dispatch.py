"""The outlook policy inside dispatch (scheduler/core/outlook_dispatch.py, `mining.policy:
outlook`): dispatch follows plan_outlook's levels, never exceeds the cap, holds mining at
its floor when the price is unknown, keeps the dwell times; the state machine hands it the
day-ahead prices to come and the last hour's real-time prices; the simulator's switch
changes what mining does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.dispatch import SiteInputs, dispatch_site
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobKind
from scheduler.core.ledger import AiClaim
from scheduler.core.mining import FleetState, MiningPolicy
from scheduler.core.mining_outlook import FleetHistory, MiningLimits, Outlook, OutlookPolicy, plan_outlook
from scheduler.core.outlook_dispatch import OutlookInputs, outlook_inputs, recent_price_ids
from scheduler.core.power import MINER_MODELS, Fleet, SitePower
from scheduler.core.price_watch import NodePrice
from scheduler.sim.engine import Scenario, SimConfig, Simulator
from scheduler.sim.report import summarize
from scheduler.sim.scenario import ScenarioSite
from scheduler.sim.traces import Hashprice, PriceTrace
from tests.builders import a_site_power

HASHPRICE = 45.0
OUTLOOK = MiningPolicy(policy="outlook", timezone="UTC")
WINTER_NOON = datetime(2024, 1, 15, 12, tzinfo=UTC).timestamp()
SUMMER_EVENING = datetime(2024, 7, 15, 19, tzinfo=UTC).timestamp()


def site(cap_mw=6.0, gpus=64) -> SitePower:
    return a_site_power("tx-1").cap_mw(cap_mw).with_miners("S19XP", 1000, "s19").with_miners("S21", 1000).with_gpus(gpus).build()


def full(s: SitePower) -> dict[str, float]:
    return {f.fleet_id: f.max_w for f in s.fleets}


def running(s: SitePower, now: float) -> dict[str, FleetState]:
    return {f.fleet_id: FleetState(True, now - 3600, True, now - 3600) for f in s.fleets}


def inputs(s: SitePower, price: float, ahead=(), recent=(), **kw) -> SiteInputs:
    seen = OutlookInputs(price, (price, price, *ahead), tuple(recent))
    return SiteInputs(s, s.cap_w, price, HASHPRICE, outlook=seen, **kw)


def test_a_short_dear_spell_keeps_a_running_fleet_that_break_even_stops():
    """The S19 XP loses 6.3 USD/MWh at 85 USD/MWh; the day-ahead sees cheap power next: stopping
    would cost more warm-up than the loss, so the outlook keeps it running, the break-even rule stops it."""
    s = site(cap_mw=10.0)
    given_ = inputs(s, 85.0, ahead=(30.0,) * 8, targets_w=full(s), held_w=full(s), fleet_states=running(s, WINTER_NOON))
    outlook = dispatch_site(given_, WINTER_NOON, OUTLOOK)
    breakeven = dispatch_site(given_, WINTER_NOON, MiningPolicy(timezone="UTC"))
    assert outlook.targets_w["s19"] == s.fleets[0].max_w
    assert breakeven.targets_w["s19"] == s.fleets[0].standby_w
    # A long dear spell ahead: now the loss beats the warm-up and the outlook stops it too.
    long_spell = dispatch_site(dataclasses.replace(given_, outlook=OutlookInputs(85.0, (85.0,) * 10)), WINTER_NOON, OUTLOOK)
    assert long_spell.targets_w["s19"] == s.fleets[0].standby_w


@settings(max_examples=150, deadline=None)
@given(
    price=st.floats(-50, 400),
    ahead=st.lists(st.floats(-50, 400), max_size=8),
    gpus=st.integers(0, 64),
    cap_mw=st.floats(2.0, 12.0),
    levels=st.lists(st.floats(0, 1), min_size=2, max_size=2),
    evening=st.booleans(),
)
def test_dispatch_follows_the_outlook_and_never_exceeds_the_cap(price, ahead, gpus, cap_mw, levels, evening):
    s = site(cap_mw=cap_mw, gpus=64)
    now = SUMMER_EVENING if evening else WINTER_NOON
    fleets = sorted(s.fleets, key=lambda f: (f.model.joules_per_th, f.fleet_id))
    targets = {f.fleet_id: f.standby_w + x * (f.max_w - f.standby_w) for f, x in zip(fleets, levels)}
    ai = (AiClaim("j", JobKind.TRAINING, 0, 1, gpus),) if gpus else ()
    floor_it = s.mining_floor_w + gpus * s.gpu_load_w + (64 - gpus) * s.gpu_idle_w
    if floor_it * s.overhead > s.cap_w:
        return
    given_ = inputs(s, price, ahead, targets_w=targets, held_w=targets, running=ai)
    out = dispatch_site(given_, now, OUTLOOK)
    ai_it = gpus * s.gpu_load_w + (64 - gpus) * s.gpu_idle_w
    assert (sum(out.targets_w.values()) + ai_it) * s.overhead <= s.cap_w + 1e-3  # the targets sent fit the cap
    if (sum(targets.values()) + ai_it) * s.overhead <= s.cap_w:  # and, counted with what fleets still draw, so does the site
        assert out.committed_w <= s.cap_w + 1e-3
    # What plan_outlook asks, under the same headroom, is what dispatch sends (whole miners; raises
    # only as far as the cap allows counted with what each fleet may still draw: they draw what they were sent).
    rated = [f.max_w - f.standby_w for f in fleets]
    history = [FleetHistory(targets[f.fleet_id] - f.standby_w) for f in fleets]
    seen = given_.outlook
    outlook = Outlook(seen.last_real_time, seen.day_ahead, (), 19.0 if evening else 12.0, evening)
    want = plan_outlook(
        [f.model.revenue_per_mwh(HASHPRICE) for f in fleets],
        rated,
        history,
        s.mining_headroom_w(ai_it, s.cap_w),
        s.overhead,
        outlook,
        OutlookPolicy(warmup_h=300 / 3600, limits=MiningLimits(min_on_steps=2, min_off_steps=2)),
    )
    for fleet, level in zip(fleets, want):
        assert out.targets_w[fleet.fleet_id] <= fleet.standby_w + level + 1e-6
        if level <= targets[fleet.fleet_id] - fleet.standby_w:  # lowering is never trimmed
            assert out.targets_w[fleet.fleet_id] == fleet.standby_w + fleet.whole_miners_w(level)


def test_an_unknown_price_holds_every_fleet_at_its_floor():
    s = site()
    out = dispatch_site(inputs(s, 20.0, targets_w=full(s), held_w=full(s), price_unknown=True), WINTER_NOON, OUTLOOK)
    assert out.targets_w == {f.fleet_id: f.standby_w for f in s.fleets}


def test_a_summer_evening_after_a_tight_hour_curtails_everything_for_4cp():
    s = site(cap_mw=10.0)
    calm = dispatch_site(inputs(s, 30.0, recent=(40.0, 35.0)), SUMMER_EVENING, OUTLOOK)
    tight = dispatch_site(inputs(s, 30.0, recent=(95.0, 35.0)), SUMMER_EVENING, OUTLOOK)
    assert calm.targets_w["s21"] > s.fleets[1].standby_w
    assert tight.targets_w == {f.fleet_id: f.standby_w for f in s.fleets}


def test_a_fleet_the_outlook_stopped_stays_off_for_min_off_s():
    s = site(cap_mw=10.0)
    policy = dataclasses.replace(OUTLOOK, min_off_s=900.0)
    stopped = dispatch_site(inputs(s, 200.0, ahead=(200.0,) * 8, targets_w=full(s), held_w=full(s), fleet_states=running(s, WINTER_NOON)), WINTER_NOON, policy)
    assert stopped.targets_w["s19"] == s.fleets[0].standby_w
    after = dict(stopped.targets_w)
    cheap = inputs(s, 20.0, targets_w=after, held_w=after, fleet_states=stopped.fleet_states)
    assert dispatch_site(cheap, WINTER_NOON + 600, policy).targets_w["s19"] == s.fleets[0].standby_w
    assert dispatch_site(cheap, WINTER_NOON + 900, policy).targets_w["s19"] > s.fleets[0].standby_w


def price(event_id: str, start: float, usd: float, forecast: bool) -> GridEvent:
    return GridEvent(event_id, GridEventKind.PRICE, start, market_node="N", usd_per_mwh=usd, forecast=forecast)


def test_the_state_hands_dispatch_the_day_ahead_to_come_and_the_last_hour():
    now = WINTER_NOON
    forecasts = [price(f"da{k}", now - 300 + 900 * k, 10.0 + k, True) for k in range(12)]
    real_time = [price(f"rt{k}", now - 900 * k, 50.0 + k, False) for k in range(6)]  # rt0 is the newest
    seen = outlook_inputs(NodePrice(10.0, 50.0), forecasts, [*forecasts, *real_time], "N", now)
    assert seen.last_real_time == 50.0
    assert seen.day_ahead == (10.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0)  # in progress (twice), then 8 more
    assert seen.recent_real_time == (53.0, 52.0, 51.0, 50.0)  # started within the hour, oldest first
    # No day-ahead price (or a stale feed): the last price stands in for what is to come.
    assert outlook_inputs(NodePrice(None, 50.0), forecasts, forecasts, "N", now).day_ahead == (50.0,)


def test_the_state_hands_dispatch_the_local_hour_of_todays_dearest_day_ahead_price():
    chicago = ZoneInfo("America/Chicago")
    day = datetime(2024, 7, 15, tzinfo=chicago).timestamp()  # local midnight
    dear = {10: 500.0, 16: 100.0, 95: 100.0, 96: 100.0}  # k=10: the day before (left out); 16: 00:00 local; 95: 19:45; 96: 20:00
    forecasts = [price(f"da{k}", day - 4 * 3600 + 900 * k, dear.get(k, 40.0), True) for k in range(120)]
    seen = outlook_inputs(NodePrice(40.0, 40.0), forecasts, forecasts, "N", day + 12 * 3600, "America/Chicago")
    assert seen.day_ahead_peak_hour == 0.0  # a tie goes to the earliest
    later = [price(f"da{k}", day - 4 * 3600 + 900 * k, 100.0 + k if k in (16, 95) else dear.get(k, 40.0) / 5, True) for k in range(120)]
    assert outlook_inputs(NodePrice(40.0, 40.0), later, later, "N", day + 12 * 3600, "America/Chicago").day_ahead_peak_hour == 19.75
    assert outlook_inputs(NodePrice(40.0, 40.0), [], [], "N", day + 12 * 3600, "America/Chicago").day_ahead_peak_hour is None


def test_day_ahead_prices_of_the_last_day_outlive_forgetting_and_real_time_ones_of_the_last_hour():
    now = WINTER_NOON
    events = [price("da-old", now - 90000, 1.0, True), price("da-day", now - 80000, 1.0, True), price("rt-old", now - 3700, 1.0, False), price("rt-hour", now - 3500, 1.0, False)]
    assert recent_price_ids(events, now) == {"da-day", "rt-hour"}


def test_the_simulator_switch_changes_what_mining_does():
    """A price just above the S19 XP's break-even for an hour, cheap day-ahead power after:
    the break-even rule curtails it, the outlook keeps it hashing."""
    t0 = datetime(2024, 1, 15, tzinfo=UTC).timestamp()
    rt = [30.0] * 4 + [85.0] * 4 + [30.0] * 8
    da = [30.0] * 16
    trace = PriceTrace("rt", tuple(t0 + 900 * i for i in range(16)), {"node": tuple(rt)}, 900.0)
    forecast = PriceTrace("da", trace.times, {"node": tuple(da)}, 900.0)
    power = SitePower("s0", 10e6, 1.1, (Fleet("s0/S21", MINER_MODELS["S21"], 1500), Fleet("s0/S19XP", MINER_MODELS["S19XP"], 1500)), 32)
    sc = Scenario((ScenarioSite(power, "r0", "node"),), trace, forecast, Hashprice.constant(HASHPRICE), (), (), t0, t0 + 4 * 3600)
    runs = {}
    for name in ("breakeven", "outlook"):
        config = SimConfig(policy=dataclasses.replace(SimConfig().policy, policy=name))
        runs[name] = summarize(Simulator(sc, config).run())
    assert runs["outlook"]["mining_energy_mwh"] > runs["breakeven"]["mining_energy_mwh"] + 1.0
    assert runs["outlook"]["cap_violations"] == runs["breakeven"]["cap_violations"] == 0
    assert runs["outlook"]["definitions"]["mining_policy"] == "outlook"
