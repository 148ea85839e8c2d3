"""The response ladder: mining first, then training caps, then preemption, inference
last; the cap is met whenever it can be, and only as much gives way as needed."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.jobs import JobKind
from scheduler.core.ladder import StepKind, respond_to_cap, restore
from scheduler.core.ledger import AiClaim, SiteLedger, power_fraction_for_slowdown
from scheduler.core.power import SitePower
from tests.builders import a_site_power

ORDER = [StepKind.CURTAIL_MINING, StepKind.CAP_TRAINING, StepKind.PREEMPT_TRAINING, StepKind.SHED_INFERENCE]


def tx_site(gpus=1000, counts=(1000, 1000)) -> SitePower:
    """20 MW at the meter, overhead 1.1, GPUs at 1 kW (100 W idle), S19XP and S21 fleets."""
    site = a_site_power("tx").cap_mw(20).overhead(1.1).with_gpus(gpus, load_w=1000, idle_w=100)
    return site.with_miners("S19XP", counts[0], "s19").with_miners("S21", counts[1]).build()


def training(job_id, gpus, priority=0, seq=0, tolerance=25.0):
    return AiClaim(job_id, JobKind.TRAINING, priority, seq, gpus, slowdown_tolerance_pct=tolerance)


def inference(job_id, gpus, priority=0, seq=0):
    return AiClaim(job_id, JobKind.INFERENCE, priority, seq, gpus)


def full_ledger(site, claims):
    return SiteLedger(site, site.cap_w, tuple(claims), {f.fleet_id: f.max_w for f in site.fleets})


def test_slowdown_tolerance_maps_to_a_power_fraction_on_the_zeus_curve():
    """The lowest fraction whose slowdown 1/speed - 1 on ZEUS_SPEED_CURVE is within the
    tolerance: 25 % falls between the curve's points (0.65, 0.781) and (0.70, 0.860)."""
    assert power_fraction_for_slowdown(0) == 1.0
    assert math.isclose(power_fraction_for_slowdown(25), 0.65 + 0.05 * (0.8 - 0.781) / (0.860 - 0.781))
    assert math.isclose(power_fraction_for_slowdown(10), 0.75 + 0.05 * (1 / 1.1 - 0.907) / (0.933 - 0.907))
    assert power_fraction_for_slowdown(50) < power_fraction_for_slowdown(25) < power_fraction_for_slowdown(10) < 1.0


def test_a_small_cut_only_touches_the_least_efficient_miners():
    site = tx_site()
    ledger = full_ledger(site, [training("t1", 400), inference("i1", 400)])
    plan = respond_to_cap(ledger, ledger.committed_w - 1e6, "cap limit 1")
    assert [s.kind for s in plan.steps] == [StepKind.CURTAIL_MINING]
    assert plan.steps[0].target == "s19" and math.isclose(plan.steps[0].freed_w, 1e6)
    assert plan.met and math.isclose(plan.ledger.committed_w, ledger.committed_w - 1e6)


def test_a_deep_cut_climbs_the_ladder_in_order_and_spares_inference():
    site = tx_site()
    ledger = full_ledger(site, [training("low", 300, priority=0, seq=1), training("high", 300, priority=5, seq=2), inference("serve", 300)])
    floor_mining = sum(f.standby_w for f in site.fleets)
    # Room for inference and one capped training gang, not both gangs.
    cap = (site.gpus * site.gpu_idle_w + floor_mining + 300 * 900 + 300 * 900 * 0.70) * site.overhead
    plan = respond_to_cap(ledger, cap, "cap limit 2")
    kinds = [s.kind for s in plan.steps]
    assert kinds == sorted(kinds, key=ORDER.index)
    assert plan.jobs(StepKind.PREEMPT_TRAINING) == ["low"]
    assert plan.jobs(StepKind.SHED_INFERENCE) == []
    assert plan.met and all(s.cause == "cap limit 2" for s in plan.steps)


def test_inference_is_shed_last_lowest_priority_first():
    site = tx_site(gpus=600)
    ledger = full_ledger(site, [inference("gold", 300, priority=9), inference("bronze", 300, priority=1), training("t", 0)])
    cap = (site.gpus * site.gpu_idle_w + sum(f.standby_w for f in site.fleets) + 300 * 900) * site.overhead
    plan = respond_to_cap(ledger, cap, "deep cut")
    assert plan.jobs(StepKind.SHED_INFERENCE) == ["bronze"] and plan.met


def test_an_emergency_sheds_all_flexible_load_and_keeps_inference():
    site = tx_site()
    ledger = full_ledger(site, [training("t1", 300), training("t2", 300), inference("i", 300)])
    plan = respond_to_cap(ledger, ledger.cap_w, "EEA3", emergency=True)
    assert {s.target for s in plan.steps if s.kind == StepKind.CURTAIL_MINING} == {"s19", "s21"}
    assert sorted(plan.jobs(StepKind.PREEMPT_TRAINING)) == ["t1", "t2"]
    assert [c.job_id for c in plan.ledger.ai] == ["i"]
    assert math.isclose(plan.ledger.mining_it_w, sum(f.standby_w for f in site.fleets))


def test_restore_gives_power_back_to_capped_training_first():
    site = tx_site()
    capped = SiteLedger(
        site, 5e6, (training("t", 300).__class__(**{**training("t", 300).__dict__, "power_fraction": 0.7}),), {f.fleet_id: f.standby_w for f in site.fleets}
    )
    plan = restore(capped, 50e6, "cap restored")
    assert [s.kind for s in plan.steps] == [StepKind.UNCAP_TRAINING]
    assert plan.ledger.ai[0].power_fraction == 1.0


claims = st.lists(
    st.builds(
        AiClaim,
        job_id=st.uuids().map(str),
        kind=st.sampled_from([JobKind.TRAINING, JobKind.INFERENCE]),
        priority=st.integers(-3, 3),
        seq=st.integers(0, 100),
        gpus=st.integers(0, 200),
        slowdown_tolerance_pct=st.sampled_from([0.0, 10.0, 25.0, 50.0]),
    ),
    max_size=8,
    unique_by=lambda c: c.job_id,
)


@settings(max_examples=400, deadline=None)
@given(claims=claims, counts=st.tuples(st.integers(0, 3000), st.integers(0, 3000)), cut=st.floats(0, 1), emergency=st.booleans())
def test_the_ladder_meets_any_feasible_cap_in_order(claims, counts, cut, emergency):
    site = tx_site(gpus=sum(c.gpus for c in claims) + 10, counts=counts)
    ledger = full_ledger(site, claims)
    floor = (site.gpus * site.gpu_idle_w + sum(f.standby_w for f in site.fleets)) * site.overhead
    inference_w = sum(ledger.claim_it_w(c) for c in claims if c.kind == JobKind.INFERENCE) * site.overhead
    new_cap = floor + (ledger.committed_w - floor) * cut
    plan = respond_to_cap(ledger, new_cap, "prop", emergency=emergency)
    kinds = [s.kind for s in plan.steps]
    assert kinds == sorted(kinds, key=ORDER.index)  # the ladder's order, never skipping back
    if not emergency or new_cap >= floor + inference_w:
        assert plan.met or (emergency and new_cap < floor + inference_w)
    if not emergency:
        assert plan.met
        # Only as much as needed: before the last step the cap was not yet met.
        if plan.steps:
            assert sum(s.freed_w for s in plan.steps[:-1]) < ledger.committed_w - new_cap + 1e-3
    assert all(s.freed_w >= -1e-6 for s in plan.steps)
    for claim in plan.ledger.ai:
        assert claim.min_power_fraction - 1e-9 <= claim.power_fraction <= 1.0
