"""Program revenue and 4CP savings (scheduler/core/grid_money.py), counted alike by the
simulator's report and bench/economics.py: by hand on a small case, against the array
form the benchmark used before (so both sum the same), and in the simulator's summary."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.grid_money import cp4_savings, cp4_usd_per_mw, grid_money, peak_intervals, program_events, program_revenue
from scheduler.core.mining_outlook import Program

PROGRAM = Program("p", committed_w=10e6, capacity_usd_per_mw_h=8.0, energy_usd_per_mwh=100.0)


def test_by_hand():
    rt = [30.0, 1200.0, 40.0, 40.0, 40.0]
    base = program_events(rt, 1000.0, 2)
    assert base == [-1, -1, 1, 1, -1]  # two intervals after the 1,200 settled
    meter = [20.0, 20.0, 6.0, 14.0, 4.0]  # MW of mining at the meter
    # capacity: 10 + 10 (capped at the commitment), the event's deliveries 10 and 6, then 4; energy on 10 + 6
    assert program_revenue(meter, base, PROGRAM, 0.25) == pytest.approx((10 + 10 + 10 + 6 + 4) * 8 * 0.25 + (10 + 6) * 100 * 0.25)
    assert program_revenue(meter, base, None, 0.25) == 0.0
    months = [6, 6, 7, 7, 8]
    peaks = peak_intervals(rt, months)
    assert peaks == [1, 2, 4]  # the dearest interval of each summer month (the first of a tie)
    per_mw = cp4_usd_per_mw(60.0, 365.0)
    assert per_mw == 60_000.0
    assert cp4_savings(meter, peaks, 20.0, per_mw) == pytest.approx((20.0 - (20 + 6 + 4) / 3) * 60_000)
    money = grid_money(meter, 0.25, PROGRAM, base, peaks, 20.0, per_mw)
    assert money.total_usd == pytest.approx(money.program_usd + money.cp4_usd)
    assert peak_intervals(rt, [1, 2, 3, 4, 5]) == [] and cp4_savings(meter, [], 20.0, per_mw) == 0.0


def array_form(meter_mw: np.ndarray, base: np.ndarray, peaks: list[int], reference: float, per_mw: float, h: float) -> tuple[float, float]:
    """The benchmark's former numpy formula (Bench.money before it moved to the core)."""
    event, committed = base >= 0, PROGRAM.committed_w / 1e6
    delivered = np.where(event, np.clip(meter_mw[np.maximum(base, 0)] - meter_mw, 0.0, committed), 0.0)
    available = np.where(event, delivered, np.minimum(meter_mw, committed))
    program = float(np.sum(available) * PROGRAM.capacity_usd_per_mw_h * h + np.sum(delivered) * PROGRAM.energy_usd_per_mwh * h)
    return program, (reference - float(np.mean(meter_mw[peaks]))) * per_mw if peaks else 0.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 30), st.sampled_from([20.0, 90.0, 1500.0]), st.sampled_from([5, 6, 7, 8, 9, 10])), min_size=1, max_size=60),
    st.integers(1, 5),
)
def test_the_core_sums_as_the_array_form_did(rows, steps):
    meter, rt, months = (list(c) for c in zip(*rows))
    base = program_events(rt, 1000.0, steps)
    peaks = peak_intervals(rt, months)
    money = grid_money(meter, 0.25, PROGRAM, base, peaks, 25.0, 1000.0)
    program, cp4 = array_form(np.array(meter), np.array(base), peaks, 25.0, 1000.0, 0.25)
    assert money.program_usd == pytest.approx(program, abs=1e-6)
    assert money.cp4_usd == pytest.approx(cp4, abs=1e-6)
    # Split where no event straddles, the two halves' program revenue adds up to the whole.
    cut = next((i for i in range(len(base), 0, -1) if i == len(base) or base[i] < 0), len(base))
    halves = program_revenue(meter[:cut], base[:cut], PROGRAM, 0.25) + program_revenue(
        meter[cut:], [b - cut if b >= 0 else -1 for b in base[cut:]], PROGRAM, 0.25
    )
    assert halves == pytest.approx(money.program_usd, abs=1e-6)


def test_the_simulator_reports_program_revenue_and_4cp_savings_per_site():
    """A June morning with two scarcity prices: mining stops once the first has settled (an event:
    energy paid for the drop), and the second, dearer, is June's 4CP proxy, where mining is off (a saving)."""
    from datetime import UTC, datetime

    from scheduler.core.power import MINER_MODELS, Fleet, SitePower
    from scheduler.sim.engine import Scenario, SimConfig, Simulator
    from scheduler.sim.report import site_grid_money, summarize
    from scheduler.sim.scenario import ScenarioSite
    from scheduler.sim.traces import Hashprice, PriceTrace

    t0 = datetime(2024, 6, 3, 8, tzinfo=UTC).timestamp()
    rt = [30.0] * 4 + [1500.0, 1600.0] + [30.0] * 10
    trace = PriceTrace("rt", tuple(t0 + 900 * i for i in range(16)), {"node": tuple(rt)}, 900.0)
    power = SitePower("s0", 10e6, 1.1, (Fleet("s0/S21", MINER_MODELS["S21"], 2000),), 8)
    sc = Scenario((ScenarioSite(power, "r0", "node"),), trace, None, Hashprice.constant(45.0), (), (), t0, t0 + 4 * 3600)
    config = SimConfig(program=Program("p", committed_w=2e6, capacity_usd_per_mw_h=8.0, energy_usd_per_mwh=100.0), program_event_steps=2)
    sim = Simulator(sc, config).run()
    summary = summarize(sim)
    site = summary["sites"]["s0"]
    money = site_grid_money(sim, sim.sites["s0"])
    assert site["program_revenue_usd"] == pytest.approx(money.program_usd, abs=0.01) and site["cp4_savings_usd"] == pytest.approx(money.cp4_usd, abs=0.01)
    assert summary["program_revenue_usd"] == pytest.approx(site["program_revenue_usd"])
    # 16 intervals of 2 MW available at 8 USD/MW-h, less what the event's first interval did not deliver; energy for the drop.
    assert 2 * 100 * 0.25 <= money.program_usd <= 16 * 2 * 8 * 0.25 + 2 * 2 * 100 * 0.25
    assert money.cp4_usd > 0  # mining was down in the dearest interval, as the cap would have let it run
