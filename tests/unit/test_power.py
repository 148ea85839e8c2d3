"""Site power and mining dispatch: the cap holds for any input, merit order, economics."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.mining import FleetState, MiningPolicy, expected_price, plan_mining, wants_to_run
from scheduler.core.power import MINER_MODELS, Cooling, Fleet
from tests.builders import a_site_power


def test_cooling_overheads():
    assert Cooling.HYDRO.default_overhead < Cooling.AIR.default_overhead


def test_revenue_per_mwh_matches_the_domain_figures():
    # DOMAIN.md: at 45 USD/PH/day, S19 XP ~87, S21 ~107, A2 ~114 USD/MWh.
    assert round(MINER_MODELS["S19XP"].revenue_per_mwh(45)) == 87
    assert round(MINER_MODELS["S21"].revenue_per_mwh(45)) == 107
    assert round(MINER_MODELS["A2"].revenue_per_mwh(45)) == 114


def test_hashrate_follows_power_above_standby():
    fleet = Fleet("f", MINER_MODELS["S21"], 10)
    assert fleet.hashrate_ths(fleet.max_w) == 2000
    assert fleet.hashrate_ths(fleet.standby_w) == 0
    assert math.isclose(fleet.hashrate_ths((fleet.max_w + fleet.standby_w) / 2), 1000)


def site(cap_mw=10.0, overhead=1.1, counts=(1000, 1000, 1000)):
    builder = a_site_power("s").cap_mw(cap_mw).overhead(overhead).with_gpus(0)
    for model, count in zip(("S19XP", "S21", "A2"), counts):
        builder.with_miners(model, count)
    return builder.build()


def test_least_efficient_miners_are_curtailed_first():
    s = site(cap_mw=10.0, overhead=1.0)  # 10 MW of IT; 8 MW left by AI for 10.2 MW of miners
    plan = plan_mining(s, ai_it_w=2e6, price_usd_per_mwh=20, hashprice_usd_per_ph_day=45, states={}, now=0)
    a2, s21, s19 = plan.targets_w["a2"], plan.targets_w["s21"], plan.targets_w["s19xp"]
    assert a2 == s.fleets[2].max_w and s21 == s.fleets[1].max_w
    assert s19 < s.fleets[0].max_w  # the S19 XP fleet takes what is left
    assert math.isclose(plan.total_w + 2e6, 10e6)


def test_mining_pauses_when_the_price_times_overhead_beats_its_revenue():
    s = site(overhead=1.1)
    # S21 earns 107.1 USD/MWh; at 100 USD/MWh x 1.1 = 110 at the meter it loses money.
    plan = plan_mining(s, 0, price_usd_per_mwh=100, hashprice_usd_per_ph_day=45, states={}, now=0, policy=MiningPolicy(hysteresis_usd_per_mwh=0))
    assert plan.targets_w["s21"] == s.fleets[1].standby_w and not plan.states["s21"].running
    assert plan.targets_w["a2"] > s.fleets[2].standby_w  # A2: 113.6 > 110


def test_hysteresis_and_dwell_keep_a_fleet_from_flapping():
    policy = MiningPolicy(hysteresis_usd_per_mwh=5, min_on_s=900, min_off_s=900)
    on = FleetState(running=True, since=0)
    assert wants_to_run(on, surplus_usd_per_mwh=-50, now=600, policy=policy)  # within min_on
    assert wants_to_run(on, surplus_usd_per_mwh=-4, now=1000, policy=policy)  # inside the band
    assert not wants_to_run(on, surplus_usd_per_mwh=-6, now=1000, policy=policy)
    off = FleetState(running=False, since=0)
    assert not wants_to_run(off, surplus_usd_per_mwh=50, now=600, policy=policy)
    assert not wants_to_run(off, surplus_usd_per_mwh=4, now=1000, policy=policy)
    assert wants_to_run(off, surplus_usd_per_mwh=6, now=1000, policy=policy)


def test_the_cap_overrides_dwell():
    s = site(cap_mw=5.0, overhead=1.0)
    states = {f.fleet_id: FleetState(running=True, since=0) for f in s.fleets}
    plan = plan_mining(
        s, ai_it_w=5e6 - s.mining_floor_w, price_usd_per_mwh=0, hashprice_usd_per_ph_day=45, states=states, now=1, policy=MiningPolicy(min_on_s=3600)
    )
    assert math.isclose(plan.total_w, s.mining_floor_w)


def test_expected_price_prefers_the_last_real_time_price():
    assert expected_price(30.0, 400.0) == 400.0
    assert expected_price(30.0, None) == 30.0


@settings(max_examples=300, deadline=None)
@given(
    cap_mw=st.floats(1, 200),
    overhead=st.floats(1.0, 1.6),
    counts=st.tuples(st.integers(0, 20000), st.integers(0, 20000), st.integers(0, 20000)),
    ai_share=st.floats(0, 1),
    steps=st.lists(st.tuples(st.floats(-100, 5000), st.floats(20, 120), st.floats(0.1, 1.5)), min_size=1, max_size=20),
    policy=st.builds(
        MiningPolicy, margin_usd_per_mwh=st.floats(0, 20), hysteresis_usd_per_mwh=st.floats(0, 10), min_on_s=st.floats(0, 3600), min_off_s=st.floats(0, 3600)
    ),
)
def test_committed_power_never_exceeds_the_cap(cap_mw, overhead, counts, ai_share, steps, policy):
    """Any prices, hashprices, cap changes and dwell settings: IT x overhead <= cap."""
    s = site(cap_mw, overhead, counts)
    states: dict = {}
    for t, (price, hashprice, cap_scale) in enumerate(steps):
        cap_w = s.cap_w * cap_scale
        budget = s.it_budget_w(cap_w) - s.mining_floor_w
        if budget < 0:
            continue  # a cap below the paused floor is the response ladder's case, not mining's
        ai = budget * ai_share
        plan = plan_mining(s, ai, price, hashprice, states, now=t * 900.0, policy=policy, cap_w=cap_w)
        states = plan.states
        assert s.within_cap(ai + plan.total_w, cap_w, tolerance_w=1e-3)
        for fleet in s.fleets:
            assert fleet.standby_w - 1e-6 <= plan.targets_w[fleet.fleet_id] <= fleet.max_w + 1e-6
