"""Mining against what an operator knows (scheduler/core/mining_outlook.py): the rules that
link intervals hold for whatever a strategy asks, and the policy's decisions."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.mining_outlook import (
    FleetHistory,
    MiningLimits,
    Outlook,
    OutlookPolicy,
    Program,
    limit_targets,
    plan_outlook,
    step_history,
)

MW = 1e6
RATED = [10 * MW, 10 * MW]  # two fleets, most efficient first
REVENUE = [110.0, 90.0]  # USD per MWh drawn
LIMITS = MiningLimits(resume_w_per_step=5 * MW, min_on_steps=2, min_off_steps=2)
POLICY = OutlookPolicy(limits=LIMITS)


def history(*levels: float) -> list[FleetHistory]:
    return [FleetHistory(level) for level in levels]


def test_the_resume_rate_lets_the_most_efficient_fleet_rise_first():
    assert limit_targets(RATED, RATED, history(0, 0), 100 * MW, LIMITS) == [5 * MW, 0.0]


def test_power_stopped_within_the_min_off_time_stays_off():
    h = [step_history(FleetHistory(8 * MW), 2 * MW, LIMITS), FleetHistory()]  # 6 MW stopped last interval
    levels = limit_targets(RATED, RATED, h, 100 * MW, MiningLimits(min_on_steps=2, min_off_steps=2))
    assert levels[0] == 4 * MW  # rated - stopped


def test_power_started_within_the_min_on_time_stays_on_unless_the_cap_takes_it():
    h = [step_history(FleetHistory(0.0), 6 * MW, LIMITS), FleetHistory()]
    assert limit_targets([0.0, 0.0], RATED, h, 100 * MW, LIMITS)[0] == 6 * MW
    assert limit_targets([0.0, 0.0], RATED, h, 4 * MW, LIMITS)[0] == 4 * MW  # the cap wins


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(0, 10 * MW), st.floats(0, 10 * MW), st.floats(0, 25 * MW)),
        min_size=1,
        max_size=12,
    )
)
def test_the_cap_is_never_exceeded_whatever_is_asked(steps):
    h = history(0.0, 0.0)
    for a, b, headroom in steps:
        levels = limit_targets([a, b], RATED, h, headroom, LIMITS)
        assert sum(levels) <= headroom + 1e-6
        assert all(0.0 <= w <= r + 1e-6 for w, r in zip(levels, RATED))
        h = [step_history(x, w, LIMITS) for x, w in zip(h, levels)]


def outlook(last: float, day_ahead: list[float], **kw) -> Outlook:
    return Outlook(last, day_ahead, **kw)


def test_a_running_fleet_rides_out_a_dip_below_break_even_the_day_ahead_market_does_not_see():
    # S19-like fleet loses 10 USD/MWh at 100: not worth a restart's warm-up for one interval.
    levels = plan_outlook(REVENUE, RATED, history(10 * MW, 10 * MW), 100 * MW, 1.0, outlook(100.0, [40.0] * 9), POLICY)
    assert levels == [10 * MW, 10 * MW]


def test_a_running_fleet_stops_when_the_day_ahead_market_expects_a_long_dear_spell():
    levels = plan_outlook(REVENUE, RATED, history(10 * MW, 10 * MW), 100 * MW, 1.0, outlook(100.0, [40.0] + [150.0] * 8), POLICY)
    assert levels == [10 * MW, 0.0]  # the efficient fleet still pays at 100


def test_a_stopped_fleet_comes_back_once_it_pays():
    levels = plan_outlook(REVENUE, RATED, history(0, 0), 100 * MW, 1.0, outlook(50.0, [50.0] * 9), POLICY)
    assert levels == [5 * MW, 0.0]  # at the resume rate


def test_a_summer_evening_after_a_tight_hour_curtails_everything_commitment_or_not():
    program = Program("p", committed_w=5 * MW, capacity_usd_per_mw_h=500.0, energy_usd_per_mwh=0.0)
    tight = outlook(50.0, [50.0] * 9, recent_real_time=[90.0, 50.0], hour=19.0, peak_season=True)
    assert plan_outlook(REVENUE, RATED, history(10 * MW, 10 * MW), 100 * MW, 1.0, tight, POLICY, program) == [0.0, 0.0]
    winter = outlook(50.0, [50.0] * 9, recent_real_time=[90.0, 50.0], hour=19.0, peak_season=False)
    assert plan_outlook(REVENUE, RATED, history(10 * MW, 10 * MW), 100 * MW, 1.0, winter, POLICY, program) == [10 * MW, 10 * MW]


def test_the_peak_window_follows_the_day_ahead_markets_dearest_hour_and_falls_back_to_fixed_hours():
    def curtailed(hour: float, peak_hour: float | None) -> bool:
        seen = outlook(50.0, [50.0] * 9, recent_real_time=[90.0, 50.0], hour=hour, peak_season=True, day_ahead_peak_hour=peak_hour)
        return plan_outlook(REVENUE, RATED, history(10 * MW, 10 * MW), 100 * MW, 1.0, seen, POLICY) == [0.0, 0.0]

    # Default window: from 1 h before the day-ahead peak hour to 1.5 h after it.
    assert [curtailed(h, 17.0) for h in (15.75, 16.0, 18.25, 18.5)] == [False, True, True, False]
    assert not curtailed(19.0, 17.0)  # inside the fixed hours, outside the day-ahead window
    assert [curtailed(h, None) for h in (18.25, 18.5, 20.25, 20.5)] == [False, True, True, False]  # fixed 18:30-20:30
    fixed = dataclasses.replace(POLICY, peak_around_day_ahead=None)
    seen = outlook(50.0, [50.0] * 9, recent_real_time=[90.0, 50.0], hour=19.0, peak_season=True, day_ahead_peak_hour=17.0)
    assert plan_outlook(REVENUE, RATED, history(10 * MW, 10 * MW), 100 * MW, 1.0, seen, fixed) == [0.0, 0.0]


def test_the_commitment_runs_while_its_capacity_payment_beats_the_loss_and_is_cut_in_an_event():
    program = Program("p", committed_w=4 * MW, capacity_usd_per_mw_h=50.0, energy_usd_per_mwh=0.0)
    dear = outlook(140.0, [140.0] * 9)  # both fleets lose (30 and 50 USD/MWh): below the payment for the efficient one
    assert plan_outlook(REVENUE, RATED, history(0, 0), 100 * MW, 1.0, dear, POLICY, program) == [4 * MW, 0.0]
    event = outlook(20.0, [20.0] * 9, event=True, event_base_w=15 * MW)
    assert plan_outlook(REVENUE, RATED, history(10 * MW, 5 * MW), 100 * MW, 1.0, event, POLICY, program) == [10 * MW, 1 * MW]
