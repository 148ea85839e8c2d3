"""Serve autoscaling rules (scheduler/core/autoscale.py): demand -> replicas within
bounds, up at once, down only after a cool-down of low demand; and the power side:
the ladder scales Serve inference down toward its fewest before shedding any, and
dispatch admits a scale-up like a start (make room first)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.autoscale import LowDemand, ScalePolicy, next_replicas, wanted_replicas, within_gpus
from scheduler.core.dispatch import SiteInputs, dispatch_site
from scheduler.core.jobs import JobKind, JobSpec, Resources
from scheduler.core.ladder import StepKind, respond_to_cap
from scheduler.core.ledger import AiClaim, SiteLedger
from tests.builders import a_site_power

POLICY = ScalePolicy(cooldown_s=30.0)


def served(low=1, high=4, rps=10.0, gpus=1) -> JobSpec:
    return JobSpec(
        JobKind.INFERENCE,
        "serve app",
        Resources(gpus=gpus),
        serve_import_path="examples.inference.service:app",
        min_replicas=low,
        max_replicas=high,
        target_rps_per_replica=rps,
    )


def test_wanted_replicas_is_demand_over_target_within_bounds():
    spec = served(low=2, high=5, rps=10.0)
    assert [wanted_replicas(spec, r) for r in (0.0, 5.0, 20.0, 20.5, 41.0, 1000.0)] == [2, 2, 2, 3, 5, 5]
    assert wanted_replicas(served(low=1, high=3, rps=0.0), 500.0) == 1  # no target: stays at its fewest


def test_scale_up_is_prompt_even_right_after_a_change():
    decision = next_replicas(served(), current=1, requests_per_s=35.0, sized_at=100.0, low=None, now=100.5, policy=POLICY)
    assert decision.replicas == 4 and "35.0 req/s" in decision.reason


def test_scale_down_waits_for_demand_to_stay_low_for_the_cool_down():
    spec = served()
    low = None
    for now in (0.0, 10.0, 29.0):
        decision = next_replicas(spec, 4, 12.0, sized_at=-100.0, low=low, now=now, policy=POLICY)
        assert decision.replicas == 4
        low = decision.low
    assert low == LowDemand(0.0, 2)
    decision = next_replicas(spec, 4, 5.0, sized_at=-100.0, low=low, now=30.0, policy=POLICY)
    assert decision.replicas == 2  # the most the low period needed, not the last reading's 1
    # A burst resets the clock: demand must stay low all over again.
    burst = next_replicas(spec, 4, 39.0, sized_at=-100.0, low=low, now=31.0, policy=POLICY)
    assert burst.replicas == 4 and burst.low is None


def test_a_fresh_size_is_not_shrunk_before_the_cool_down():
    decision = next_replicas(served(), 3, 0.0, sized_at=100.0, low=LowDemand(50.0, 1), now=110.0, policy=POLICY)
    assert decision.replicas == 3 and decision.low == LowDemand(50.0, 1)


def test_a_scale_up_is_trimmed_to_the_free_gpus():
    assert within_gpus(current=1, wanted=4, gpus_per_replica=2, free_gpus=5) == 3
    assert within_gpus(current=1, wanted=4, gpus_per_replica=2, free_gpus=1) == 1
    assert within_gpus(current=3, wanted=2, gpus_per_replica=2, free_gpus=0) == 2  # scale-downs untouched


@settings(max_examples=200, deadline=None)
@given(
    low=st.integers(1, 3),
    extra=st.integers(0, 5),
    readings=st.lists(st.tuples(st.floats(0.1, 20.0), st.floats(0.0, 200.0)), min_size=1, max_size=60),
)
def test_replicas_stay_in_bounds_and_never_shrink_faster_than_the_cool_down(low, extra, readings):
    spec = served(low=low, high=low + extra, rps=10.0)
    current, sized_at, state, now = low, 0.0, None, 0.0
    history = []  # (time, rps)
    for gap, rps in readings:
        now += gap
        history.append((now, rps))
        decision = next_replicas(spec, current, rps, sized_at, state, now, POLICY)
        assert low <= decision.replicas <= low + extra
        if decision.replicas < current:
            assert now - sized_at >= POLICY.cooldown_s  # no flapping faster than the cool-down
            window = [r for t, r in history if t >= now - POLICY.cooldown_s]
            assert all(wanted_replicas(spec, r) <= decision.replicas for r in window)  # what recent demand needed stays
        if decision.replicas > current:
            assert decision.replicas == wanted_replicas(spec, rps)  # up at once, to what demand needs
        if decision.replicas != current:
            sized_at = now
        current, state = decision.replicas, decision.low


# ------------------------------------------------------------------ the power side
SITE = a_site_power("s").cap_w(1e9).overhead(1.0).with_miners("S21", 100).with_gpus(16, idle_w=0).build()
FLOOR_W = SITE.mining_floor_w


def serve_claim(job_id, replicas, low=1, priority=0, seq=0, per_replica=2):
    return AiClaim(job_id, JobKind.INFERENCE, priority, seq, replicas * per_replica, gpus_per_replica=per_replica, min_gpus=low * per_replica)


def test_the_ladder_scales_serve_inference_down_to_its_fewest_before_shedding_any():
    claims = [serve_claim("svc", 4, low=1), AiClaim("plain", JobKind.INFERENCE, 5, 1, 2)]
    ledger = SiteLedger(SITE, 1e9, tuple(claims), {"s21": FLOOR_W})
    # 10 kW of AI: a cut to 7.5 kW takes two of the service's replicas (whole replicas), nothing else.
    plan = respond_to_cap(ledger, 7_500 + FLOOR_W, "cut")
    assert [(s.kind, s.target) for s in plan.steps if s.kind != StepKind.CURTAIL_MINING] == [(StepKind.SCALE_DOWN_INFERENCE, "svc")]
    assert {c.job_id: c.gpus for c in plan.ledger.ai} == {"svc": 4, "plain": 2} and plan.met
    # A deeper cut: the service stops at its fewest; only then is inference shed.
    deep = respond_to_cap(ledger, 3_000 + FLOOR_W, "deep cut")
    assert deep.jobs(StepKind.SCALE_DOWN_INFERENCE) == ["svc"]
    assert deep.jobs(StepKind.SHED_INFERENCE) == ["svc"] and deep.met  # lower priority is shed first
    assert {c.job_id: c.gpus for c in deep.ledger.ai} == {"plain": 2}


def test_an_emergency_within_the_cap_leaves_serve_replicas_alone():
    ledger = SiteLedger(SITE, 1e9, (serve_claim("svc", 3),), {"s21": 300_000.0})
    plan = respond_to_cap(ledger, 1e9, "emergency", emergency=True)
    assert plan.jobs(StepKind.SCALE_DOWN_INFERENCE) == [] and plan.jobs(StepKind.SHED_INFERENCE) == []


def inputs(**fields) -> SiteInputs:
    return SiteInputs(SITE, fields.pop("cap_w", 20_000 + FLOOR_W + 1), 20.0, 45.0, **fields)


def test_a_scale_up_makes_room_first_then_goes_out():
    running = (serve_claim("svc", 1),)
    grow = (AiClaim("svc", JobKind.INFERENCE, 0, 0, 4),)  # two more replicas: 4 GPUs
    mining = {"s21": 18_000.0 + FLOOR_W - 2_000}  # room for today's AI only
    first = dispatch_site(inputs(running=running, growing=grow, targets_w=mining, held_w=mining), now=0.0)
    assert first.grow == () and "waiting for mining" in first.grow_reasons["svc"]
    assert first.targets_w["s21"] < mining["s21"]  # mining told to make room
    confirmed = dict(first.targets_w)
    second = dispatch_site(inputs(running=running, growing=grow, targets_w=confirmed, held_w=confirmed), now=1.0)
    assert second.grow == ("svc",)


def test_no_scale_up_while_the_site_climbs_the_ladder():
    running = (serve_claim("svc", 4),)
    grow = (AiClaim("svc", JobKind.INFERENCE, 0, 0, 2),)
    result = dispatch_site(inputs(cap_w=6_000 + FLOOR_W, running=running, growing=grow, targets_w={"s21": FLOOR_W}, held_w={"s21": FLOOR_W}), now=0.0)
    assert result.grow == () and "grid event" in result.grow_reasons["svc"]
    assert result.shrink == {"svc": 6}  # down a replica to fit, its GPUs counted until gone
    assert result.committed_w > 6_000 + FLOOR_W  # the replica it gives up still draws
