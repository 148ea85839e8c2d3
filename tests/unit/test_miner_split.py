"""The split of a power target over real miners (agents/miners/split.py): settings in
range, totals under the target and close to it, miners that do not answer or are stuck
never planned for, the fewest miners paused, a fleet's target over its groups, and
escalation around stuck miners."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.miners.split import (
    GroupCapacity,
    MinerProgress,
    MinerState,
    Setting,
    capacity,
    escalate,
    find_stuck,
    split_fleet,
    split_group,
)
from scheduler.core.power import MINER_MODELS

S21, XP = MINER_MODELS["S21"], MINER_MODELS["S19XP"]  # S21: 2,400-3,500 W, standby 25 W


def miners(n: int, model=S21, base: int = 1) -> list[MinerState]:
    return [MinerState(f"10.0.0.{base + i}", model, takes_power_limit=True, can_pause=True) for i in range(n)]


def in_range(state: MinerState, setting: Setting) -> bool:
    m = state.model
    if setting.paused:
        return state.can_pause
    if setting.limit_w is None:
        return not state.takes_power_limit
    return state.takes_power_limit and m.min_w <= setting.limit_w <= m.rated_w


def test_every_miner_keeps_running_at_one_lower_limit_while_that_fits():
    plan = split_group(miners(10), 30_000)
    assert {s.paused for s in plan.settings.values()} == {False}
    assert {s.limit_w for s in plan.settings.values()} == {3000}
    assert plan.planned_w == 30_000 and plan.fits


def test_the_fewest_miners_are_paused_and_the_rest_fill_the_target():
    plan = split_group(miners(10), 20_000)  # all at 2,400 W would be 24 kW
    paused = [ip for ip, s in plan.settings.items() if s.paused]
    assert len(paused) == 2  # 8 x 2,400 + 2 x 25 = 19,250 <= 20,000
    assert 20_000 - 10 <= plan.planned_w <= 20_000
    running = [s.limit_w for s in plan.settings.values() if not s.paused]
    assert max(running) - min(running) <= 1  # the same share of each range
    assert paused == ["10.0.0.1", "10.0.0.2"]  # ties in address order (numeric)


def test_miners_already_paused_stay_paused():
    states = [dataclasses.replace(m, paused_now=m.ip in ("10.0.0.7", "10.0.0.9")) for m in miners(10)]
    plan = split_group(states, 20_000)
    assert sorted(ip for ip, s in plan.settings.items() if s.paused) == ["10.0.0.7", "10.0.0.9"]


def test_miners_that_do_not_answer_are_counted_never_planned():
    states = miners(10)
    states[0] = dataclasses.replace(states[0], answering=False, last_w=3_100)  # counted at its last reading
    states[1] = dataclasses.replace(states[1], answering=False)  # never read: rated power
    states[2] = dataclasses.replace(states[2], answering=False, last_w=2_450, setting_w=2_900)  # went silent while ramping up
    plan = split_group(states, 20_000)
    assert not {"10.0.0.1", "10.0.0.2", "10.0.0.3"} & set(plan.settings)
    assert plan.counted_w == {"10.0.0.1": 3_100, "10.0.0.2": 3_500, "10.0.0.3": 2_900}
    assert plan.planned_w <= 20_000
    assert sum(s.power_w(S21) for s in plan.settings.values()) <= 20_000 - 9_500


def test_a_target_below_the_floor_sends_everything_to_its_lowest_setting():
    states = miners(4) + [MinerState("10.0.0.9", S21, takes_power_limit=True, can_pause=False)]
    plan = split_group(states, 1_000)
    assert not plan.fits and plan.floor_w == 4 * 25 + 2_400
    assert plan.settings["10.0.0.9"] == Setting(False, 2_400)  # cannot pause: its lowest limit
    assert all(plan.settings[f"10.0.0.{i}"].paused for i in range(1, 5))


def test_a_target_above_the_maximum_runs_everything_at_rated_power():
    plan = split_group(miners(3), 1e9)
    assert {s.limit_w for s in plan.settings.values()} == {3_500} and plan.planned_w == 10_500


def test_miners_without_a_power_limit_run_at_stock_and_are_paused_first():
    states = miners(4) + [MinerState(f"10.0.1.{i}", S21, takes_power_limit=False, can_pause=True) for i in range(2)]
    plan = split_group(states, 4 * 2_400 + 3_500 + 25 + 500)
    stock = [plan.settings["10.0.1.0"], plan.settings["10.0.1.1"]]
    assert sorted(s.paused for s in stock) == [False, True]  # one paused: it cannot run lower
    assert [s.limit_w for s in stock if not s.paused] == [None]
    assert all(not plan.settings[f"10.0.0.{i}"].paused for i in range(1, 5))
    assert plan.planned_w == 4 * 2_400 + 3_500 + 25 + 500


def test_pausing_by_the_biggest_saving_does_not_leave_the_target_unfilled():
    # One stock miner and two tunable ones: pausing the stock one saves 3,475 W, too much
    # for the two to make up; the split runs it again if it fits.
    states = [MinerState("a", S21, False, True), *miners(2)]
    plan = split_group(states, 3_500 + 2 * 2_400 - 100)
    assert plan.planned_w <= 3_500 + 2 * 2_400 - 100
    assert plan.planned_w >= 3_500 + 2_400 + 25 - 1


def test_stuck_miners_count_at_the_larger_of_reading_and_setting():
    states = miners(4)
    states[0] = dataclasses.replace(states[0], stuck=True, last_w=3_500, setting_w=25)  # a refused pause
    states[1] = dataclasses.replace(states[1], stuck=True, last_w=25, setting_w=3_000)  # a refused resume
    plan = split_group(states, 10_000)
    assert plan.counted_w == {"10.0.0.1": 3_500, "10.0.0.2": 3_000}
    assert plan.stuck == ("10.0.0.1", "10.0.0.2")
    assert plan.planned_w <= 10_000 and set(plan.settings) == {"10.0.0.3", "10.0.0.4"}


def test_escalation_lowers_the_others_and_lists_the_stuck():
    states = miners(10)
    before = split_group(states, 30_000)
    assert before.settings["10.0.0.1"] == Setting(False, 3_000)
    stuck_at = dataclasses.replace(states[0], last_w=3_500, setting_w=3_000)
    after = escalate([stuck_at, *states[1:]], 30_000, ["10.0.0.1"])
    assert after.stuck == ("10.0.0.1",) and "10.0.0.1" not in after.settings
    assert after.planned_w <= 30_000
    assert all(s.limit_w < 3_000 for s in after.settings.values())


def test_find_stuck_names_failed_commands_and_miners_over_their_setting_after_the_ramp():
    model = dataclasses.replace(S21, ramp_down_s=5)
    paused = Setting(True)

    def progress(ip, **kw):
        base = dict(ip=ip, model=model, setting=paused, sent_at=100.0, failed=False, answering=True, last_w=3_500.0, read_at=110.0)
        return MinerProgress(**{**base, **kw})

    found = find_stuck(
        [
            progress("failed", failed=True, read_at=100.5),
            progress("over"),  # read 10 s after: past 5 s ramp + 2 s grace
            progress("early", read_at=106.0),  # still within ramp + grace
            progress("there", last_w=25.0),
            progress("near", last_w=25.0 + 100),  # within the reading tolerance
            progress("silent", answering=False),
            progress("unsent", setting=None),
        ],
        grace_s=2.0,
    )
    assert found == ["failed", "over"]


def test_a_fleet_target_goes_to_floors_first_then_in_proportion_to_capacity():
    groups = {"rack-1": GroupCapacity(1_000, 11_000), "rack-2": GroupCapacity(4_000, 9_000)}
    assert split_fleet(groups, 3_000) == {"rack-1": 1_000, "rack-2": 4_000}  # below the floors
    split = split_fleet(groups, 5_000 + 7_500)
    assert split == pytest.approx({"rack-1": 1_000 + 5_000, "rack-2": 4_000 + 2_500})
    assert split_fleet(groups, 1e9) == {"rack-1": 11_000, "rack-2": 9_000}


def test_a_group_with_silent_miners_raises_its_floor_and_lowers_the_others_targets():
    healthy = capacity(miners(10))
    silent = capacity(miners(8) + [dataclasses.replace(m, answering=False) for m in miners(2, base=50)])
    assert silent.floor_w == 8 * 25 + 2 * 3_500 and silent.max_w == 10 * 3_500
    split = split_fleet({"a": healthy, "b": silent}, 40_000)
    assert sum(split.values()) == pytest.approx(40_000)
    assert split["a"] < 20_000  # the silent group's 7 kW are taken from both


def test_capacity_counts_what_each_miner_can_do():
    states = [MinerState("p", S21, True, True), MinerState("n", S21, True, False), MinerState("s", S21, False, True), MinerState("x", S21, False, False)]
    assert capacity(states) == GroupCapacity(25 + 2_400 + 25 + 3_500, 4 * 3_500)


flags = st.tuples(st.booleans(), st.booleans(), st.booleans(), st.one_of(st.none(), st.floats(0, 4_000)), st.booleans(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from([S21, XP, MINER_MODELS["A2"]]),
    specs=st.lists(flags, min_size=1, max_size=40),
    fraction=st.floats(-0.1, 1.2),
)
def test_property_totals_stay_under_the_target_and_settings_in_range(model, specs, fraction):
    states = [
        MinerState(f"10.9.{i // 250}.{i % 250 + 1}", model, limit, pause, answering, last_w, stuck, paused_now=now, setting_w=last_w)
        for i, (limit, pause, answering, last_w, stuck, now) in enumerate(specs)
    ]
    cap = capacity(states)
    target = cap.floor_w + fraction * (cap.max_w - cap.floor_w)
    plan = split_group(states, target)
    assert set(plan.settings) == {s.ip for s in states if s.answering and not s.stuck}  # only those planned
    for state in states:
        if state.ip in plan.settings:
            assert in_range(state, plan.settings[state.ip])
    if target >= cap.floor_w:
        assert plan.fits and plan.planned_w <= target + 1e-6
        # Close: short of the target by less than one miner's step (pausing or stock) plus whole-watt rounding.
        steps = [s.running_min_w - s.model.standby_w for s in states if s.ip in plan.settings and s.can_pause] or [0.0]
        reachable = min(target, cap.max_w)
        assert plan.planned_w >= reachable - max(steps) - len(states) - 1e-6
    else:
        assert plan.planned_w == pytest.approx(cap.floor_w)
