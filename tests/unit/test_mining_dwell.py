"""The min-on dwell protects only a switch the economics made (scheduler/core/mining.py):
a fleet switched on because headroom freed up is not held on at a loss, and one that was
off only for lack of headroom comes back without a min-off wait."""

from __future__ import annotations

from scheduler.core.mining import FleetState, MiningPolicy, plan_mining
from scheduler.core.power import SitePower
from tests.builders import a_site_power

POLICY = MiningPolicy(hysteresis_usd_per_mwh=2.0, min_on_s=900.0, min_off_s=900.0)
CHEAP, DEAR = 20.0, 500.0  # USD/MWh: an S21 (107 USD/MWh at 45 USD/PH/day) pays at the first, loses at the second


def site() -> SitePower:
    return a_site_power("s").cap_mw(10).overhead(1.0).with_gpus(0).with_miners("S21", 1000).build()


def plan(states, now, price, ai_it_w=0.0):
    s = site()
    return plan_mining(s, ai_it_w, price, 45.0, states, now, POLICY)


def test_a_fleet_switched_on_for_headroom_is_not_held_on_at_a_loss():
    s = site()
    no_room = s.cap_w - s.mining_floor_w  # AI takes everything above mining's floor
    p0 = plan({}, 0.0, CHEAP, ai_it_w=no_room)  # it pays, but there is no room
    assert not p0.states["s21"].running
    p1 = plan(p0.states, 1000.0, CHEAP)  # room again: on
    assert p1.states["s21"].running
    p2 = plan(p1.states, 1060.0, DEAR)  # a price spike one tick later: off at once
    assert not p2.states["s21"].running
    assert p2.targets_w["s21"] == s.fleets[0].standby_w


def test_a_fleet_off_only_for_lack_of_headroom_comes_back_without_a_min_off_wait():
    s = site()
    p0 = plan({}, 0.0, CHEAP)
    p1 = plan(p0.states, 60.0, CHEAP, ai_it_w=s.cap_w - s.mining_floor_w)
    assert not p1.states["s21"].running
    p2 = plan(p1.states, 120.0, CHEAP)  # 60 s after it went off, well within min_off_s
    assert p2.states["s21"].running


def test_a_fleet_the_economics_switched_on_keeps_its_min_on_dwell():
    p0 = plan({}, 0.0, CHEAP)
    assert p0.states["s21"].running
    assert plan(p0.states, 600.0, DEAR).states["s21"].running  # within min_on_s: held
    assert not plan(p0.states, 901.0, DEAR).states["s21"].running


def test_a_fleet_the_economics_switched_off_keeps_its_min_off_dwell():
    on = FleetState(running=True, since=0.0)
    p1 = plan({"s21": on}, 1000.0, DEAR)
    assert not p1.states["s21"].running
    assert not plan(p1.states, 1500.0, CHEAP).states["s21"].running  # within min_off_s
    assert plan(p1.states, 1901.0, CHEAP).states["s21"].running
