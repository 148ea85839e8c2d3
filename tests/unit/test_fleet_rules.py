"""The fleet rules written once in scheduler/core/power.py: whole-miner rounding, and
curtailing least efficient first; the scheduler's ladder and the agent's guard agree."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.power_guard import FleetReading, curtail_to_fit
from scheduler.core.ladder import curtail_mining
from scheduler.core.ledger import SiteLedger
from scheduler.core.power import MINER_MODELS, Fleet, curtail_least_efficient_first, curtail_order
from tests.builders import a_site_power

WHOLE = Fleet("whole", dataclasses.replace(MINER_MODELS["S19XP"], takes_power_limit=False), 10)  # 21.5 J/TH
TUNED = Fleet("tuned", MINER_MODELS["S21"], 10)  # 17.5 J/TH
BEST = Fleet("best", MINER_MODELS["A2"], 10)  # 16.5 J/TH


def test_a_fleet_that_takes_no_power_limit_runs_whole_miners():
    per_miner = WHOLE.per_miner_w
    assert per_miner == MINER_MODELS["S19XP"].rated_w - MINER_MODELS["S19XP"].standby_w
    assert WHOLE.whole_miners_w(2.7 * per_miner) == pytest.approx(2 * per_miner)
    assert WHOLE.whole_miners_w(3 * per_miner - 1e-7) == pytest.approx(3 * per_miner)  # float dust is a whole miner
    assert WHOLE.whole_miners_w(0.5 * per_miner) == 0.0
    assert TUNED.whole_miners_w(2.7 * TUNED.per_miner_w) == pytest.approx(2.7 * TUNED.per_miner_w)


def test_least_efficient_first_then_by_fleet_id():
    twin = Fleet("a-twin", TUNED.model, 5)
    assert [f.fleet_id for f in curtail_order([BEST, TUNED, WHOLE, twin])] == ["whole", "a-twin", "tuned", "best"]


def test_curtail_just_enough_never_below_the_floor_and_whole_miners_where_it_must():
    levels = {f.fleet_id: f.max_w for f in (WHOLE, TUNED, BEST)}
    excess = WHOLE.max_w - WHOLE.standby_w + 0.5 * TUNED.per_miner_w
    lowered, left = curtail_least_efficient_first([BEST, TUNED, WHOLE], levels, excess)
    assert lowered == {"whole": WHOLE.standby_w, "tuned": pytest.approx(TUNED.max_w - 0.5 * TUNED.per_miner_w)}
    assert left == 0.0
    lowered, _ = curtail_least_efficient_first([WHOLE], levels, 1.5 * WHOLE.per_miner_w)
    assert lowered == {"whole": pytest.approx(WHOLE.max_w - 2 * WHOLE.per_miner_w)}  # two whole miners
    lowered, left = curtail_least_efficient_first([WHOLE, TUNED], levels, 0.0, everything=True)
    assert lowered == {"whole": WHOLE.standby_w, "tuned": TUNED.standby_w} and left == 0.0


@given(
    st.lists(st.integers(0, 10), min_size=3, max_size=3),
    st.floats(0.0, 120_000.0, allow_nan=False),
)
def test_the_scheduler_ladder_and_the_agent_guard_curtail_alike(miners_running, excess_w):
    fleets = (WHOLE, TUNED, BEST)
    levels = {f.fleet_id: f.standby_w + n * f.per_miner_w for f, n in zip(fleets, miners_running)}
    site = a_site_power("s").cap_w(1e9).overhead(1.1).with_gpus(0).with_fleet(*fleets).build()
    ledger = SiteLedger(site, site.cap_w, (), levels)
    cap_w = ledger.committed_w - (excess_w + 2.0) * site.overhead  # beyond the guard's 1 W tolerance
    ladder_levels, _ = curtail_mining(ledger, cap_w, "test")
    readings = [FleetReading(f, levels[f.fleet_id], levels[f.fleet_id]) for f in fleets]
    guard_lowered, _ = curtail_to_fit(readings, levels, excess_w + 2.0)
    assert {fid: w for fid, w in ladder_levels.items() if w != levels[fid]} == pytest.approx(guard_lowered)
