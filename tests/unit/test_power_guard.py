"""Holding the line locally: over the cap (least efficient first, just enough, never
below standby) and cut off during a cap event (paused floor, never raised)."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.power_guard import FleetReading, hold_the_line
from scheduler.core.power import MINER_MODELS, Fleet

A2 = Fleet("a2", MINER_MODELS["A2"], 100)  # 16.5 J/TH: curtailed last
S21 = Fleet("s21", MINER_MODELS["S21"], 100)  # 17.5 J/TH
XP = Fleet("xp", MINER_MODELS["S19XP"], 100)  # 21.5 J/TH: curtailed first
OVERHEAD = 1.1


def at(fleet: Fleet, target_w: float, measured_w: float | None = None) -> FleetReading:
    return FleetReading(fleet, target_w if measured_w is None else measured_w, target_w)


def full():
    return [at(A2, A2.max_w), at(S21, S21.max_w), at(XP, XP.max_w)]


def it_w(readings, result):
    return sum(result.targets_w.get(r.fleet.fleet_id, r.target_w) for r in readings)


def test_under_the_cap_nothing_happens():
    readings = full()
    cap = (sum(r.target_w for r in readings) + 10_000) * OVERHEAD
    for stream_up in (True, False):
        result = hold_the_line(cap, OVERHEAD, 10_000, readings, stream_up=stream_up, cap_event_active=False)
        assert not result.acted and result.action == ""


def test_over_the_cap_the_least_efficient_fleet_goes_down_just_enough():
    readings = full()
    gpu = 50_000.0
    cap = (gpu + sum(r.target_w for r in readings) - 100_000) * OVERHEAD
    result = hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False)
    assert result.targets_w == {"xp": pytest.approx(XP.max_w - 100_000)}
    assert (gpu + it_w(readings, result)) * OVERHEAD == pytest.approx(cap)
    assert "over the cap" in result.action and "xp 301.0 kW -> 201.0 kW" in result.action


def test_merit_order_goes_on_to_the_next_fleet_never_below_standby():
    readings = full()
    gpu = 50_000.0
    cut = XP.max_w - XP.standby_w + 20_000  # more than the S19 XPs can give
    cap = (gpu + sum(r.target_w for r in readings) - cut) * OVERHEAD
    result = hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False)
    assert result.targets_w == {"xp": XP.standby_w, "s21": pytest.approx(S21.max_w - 20_000)}
    assert (gpu + it_w(readings, result)) * OVERHEAD == pytest.approx(cap)


def test_when_mining_alone_cannot_fit_it_all_goes_to_standby_and_says_so():
    readings = full()
    gpu = 1_000_000.0
    result = hold_the_line(500_000.0, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False)
    assert result.targets_w == {f.fleet_id: f.standby_w for f in (A2, S21, XP)}
    assert "the GPUs need the scheduler's caps" in result.action


def test_the_guard_judges_targets_so_a_ramp_down_under_way_is_left_alone():
    gpu = 50_000.0
    readings = [at(A2, A2.max_w), at(S21, S21.max_w), at(XP, XP.standby_w, measured_w=XP.max_w)]  # XP on its way down
    cap = (gpu + A2.max_w + S21.max_w + XP.standby_w) * OVERHEAD  # fits once XP is down
    assert not hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=True).acted


def test_a_fleet_ramping_up_past_the_cap_is_curtailed_before_the_pass_it_would_cross_in():
    gpu = 50_000.0
    readings = [at(A2, A2.max_w), at(S21, S21.standby_w), at(XP, XP.max_w, measured_w=XP.standby_w)]
    cap = (gpu + A2.max_w + S21.standby_w + 100_000) * OVERHEAD
    # XP climbs ~30 kW/s (10 s ramp): 100 kW above its floor takes ~3.3 s.
    assert not hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False, horizon_s=0.5).acted
    result = hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False, horizon_s=4.0)
    assert result.targets_w == {"xp": pytest.approx(100_000)}
    assert result.action.startswith("about to go over the cap")


def test_whole_miners_only_for_fleets_that_take_no_power_limit():
    whole = Fleet("whole", dataclasses.replace(MINER_MODELS["S19XP"], takes_power_limit=False), 10)
    per_miner = 3010 - 25
    readings = [at(whole, whole.max_w)]
    cap = (whole.max_w - 1.5 * per_miner) * OVERHEAD  # one and a half miners too many
    result = hold_the_line(cap, OVERHEAD, 0.0, readings, stream_up=True, cap_event_active=False)
    assert result.targets_w == {"whole": pytest.approx(whole.max_w - 2 * per_miner)}


def test_cut_off_during_a_cap_event_all_mining_goes_to_its_floor_and_stays():
    readings = full()
    cap = 1e9  # plenty: the floor is not about the cap
    result = hold_the_line(cap, OVERHEAD, 0.0, readings, stream_up=False, cap_event_active=True)
    assert result.targets_w == {f.fleet_id: f.standby_w for f in (A2, S21, XP)}
    assert "stream to the scheduler lost during a cap event" in result.action
    floored = [at(r.fleet, r.fleet.standby_w, measured_w=r.target_w) for r in readings]
    again = hold_the_line(cap, OVERHEAD, 0.0, floored, stream_up=False, cap_event_active=True)
    assert not again.acted  # recorded once, held without new actions


def test_cut_off_without_a_cap_event_mining_carries_on():
    assert not hold_the_line(1e9, OVERHEAD, 0.0, full(), stream_up=False, cap_event_active=False).acted


def test_connected_during_a_cap_event_the_scheduler_decides():
    assert not hold_the_line(1e9, OVERHEAD, 0.0, full(), stream_up=True, cap_event_active=True).acted


def test_no_cap_means_nothing_to_hold():
    assert not hold_the_line(0.0, OVERHEAD, 1e9, full(), stream_up=True, cap_event_active=False).acted


@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=3),
    st.floats(0, 2e6),
    st.floats(0, 2e6),
    st.booleans(),
    st.booleans(),
)
def test_the_guard_only_lowers_never_below_standby_and_fits_when_mining_can(levels, gpu, cap, stream_up, event):
    readings = [
        FleetReading(f, f.standby_w + m * (f.max_w - f.standby_w), f.standby_w + t * (f.max_w - f.standby_w)) for f, (t, m) in zip((A2, S21, XP), levels)
    ]
    result = hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=stream_up, cap_event_active=event)
    for r in readings:
        new = result.targets_w.get(r.fleet.fleet_id, r.target_w)
        assert r.fleet.standby_w - 1e-6 <= new <= r.target_w + 1e-9
        if not stream_up and event:
            assert new == pytest.approx(r.fleet.standby_w, abs=1.0)
    floor = gpu + sum(f.standby_w for f in (A2, S21, XP))
    metered = (gpu + sum(r.measured_w for r in readings)) * OVERHEAD
    if cap > 0 and metered > cap + 2.0 and floor * OVERHEAD <= cap:
        assert (gpu + it_w(readings, result)) * OVERHEAD <= cap + 2.0  # over the cap: the targets now fit
    assert result.acted == bool(result.action)


def test_a_meter_reading_above_the_computed_figure_comes_off_the_budget():
    readings = full()
    gpu = 50_000.0
    computed = (gpu + sum(r.measured_w for r in readings)) * OVERHEAD
    cap = computed + 5_000.0  # the model says 5 kW of room
    assert not hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False).acted
    metered = computed + 27_000.0  # auxiliary load the model does not see: 22 kW over at the meter
    result = hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False, metered_w=metered)
    assert result.targets_w == {"xp": pytest.approx(XP.max_w - 22_000.0 / OVERHEAD)}
    assert (gpu + it_w(readings, result)) * OVERHEAD + (metered - computed) == pytest.approx(cap)
    assert "over the cap" in result.action


def test_a_meter_reading_below_the_computed_figure_is_not_taken_as_room():
    readings = full()
    gpu = 50_000.0
    computed = (gpu + sum(r.measured_w for r in readings)) * OVERHEAD
    cap = computed - 11_000.0
    without = hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False)
    with_low_meter = hold_the_line(cap, OVERHEAD, gpu, readings, stream_up=True, cap_event_active=False, metered_w=computed - 50_000.0)
    assert with_low_meter.targets_w == without.targets_w == {"xp": pytest.approx(XP.max_w - 10_000.0)}
