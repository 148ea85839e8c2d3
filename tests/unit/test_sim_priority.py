"""Preemption for priority in the simulator (the same core/priority.py pass): over random
small worlds (sites, jobs of priorities 0..2, cap cuts, delays) no run is preempted for
priority within min_run_s of its start, only training is, and only for a job at least the
gap higher; and a high-priority service arriving at a site full of low-priority training
does preempt once the run is old enough, and starts, so the property is not vacuous."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.core.jobs import JobKind, JobState
from scheduler.core.priority import PreemptionPolicy
from scheduler.sim.engine import SimConfig, Simulator
from scheduler.sim.scenario import Arrival
from tests.unit.test_sim_properties import one_site, scenario, worlds


def watched(sc, config) -> tuple[Simulator, list]:
    """A run whose priority preemptions are recorded: (victim as preempted, the job it made room for, when)."""
    sim = Simulator(sc, config)
    seen = []
    inner = sim.scheduler.on_event

    def on_event(job, event):
        if event.to_state == JobState.PREEMPTED and job.preempted_for:
            seen.append((job, sim.scheduler.jobs[job.preempted_for], event.at))
        inner(job, event)

    sim.scheduler.on_event = on_event
    return sim.run(), seen


def check(seen, policy: PreemptionPolicy) -> None:
    for victim, beneficiary, at in seen:
        assert victim.spec.kind == JobKind.TRAINING, victim  # inference is never a victim
        assert at - victim.started_at >= policy.min_run_s, (victim, at)
        assert beneficiary.spec.priority - victim.spec.priority >= policy.priority_gap


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds(), min_run_s=st.sampled_from([0.0, 120.0, 600.0]))
def test_never_within_min_run_time_and_never_inference(world, min_run_s):
    sc, config = world
    policy = PreemptionPolicy(min_run_s=min_run_s)
    _, seen = watched(sc, dataclasses.replace(config, preemption=policy))
    check(seen, policy)


def test_a_service_preempts_old_enough_training_and_starts():
    site = one_site(cap_mw=50.0, gpus=64)
    arrivals = (
        Arrival(0.0, JobKind.TRAINING, 64, 6 * 3600, priority=0, job_id="train"),
        Arrival(300.0, JobKind.INFERENCE, 8, 3600, priority=10, job_id="svc"),
    )
    policy = PreemptionPolicy(min_run_s=600.0)
    sim, seen = watched(scenario([site], arrivals, hours=1.0), SimConfig(tick_s=10.0, preemption=policy))
    check(seen, policy)
    assert [(v.job_id, b.job_id) for v, b, _ in seen] == [("train", "svc")]
    at = seen[0][2]
    assert 600.0 <= at - sim.scenario.start <= 700.0  # once the run had its min_run_s (it started a tick or so after arriving)
    assert sim.scheduler.jobs["svc"].state == JobState.RUNNING
