"""Contracts in the simulator (the same core/priority.py pass, with a TenancyPolicy): a tenant
borrowing a whole idle site gives way when another tenant's firm claim arrives. Only the
borrowed runs are reclaimed (never the borrower's firm share), each once it ran the reclaim
min run, with its checkpoint grace, and the claim starts within the reclaim grace; the
reclaimed runs wait (no reclaim back) and resume from their checkpoints later."""

from __future__ import annotations

from scheduler.core.contracts import Contract, TenancyPolicy
from scheduler.core.jobs import JobKind, JobState
from scheduler.sim.engine import SimConfig, Simulator
from scheduler.sim.scenario import Arrival
from tests.unit.test_sim_properties import cap_cut, one_site, scenario

TENANCY = TenancyPolicy(contracts=(Contract("acme", "r0", 32), Contract("beta", "r0", 32)), reclaim_grace_s=600.0)


def test_a_firm_claim_reclaims_the_borrowed_half_of_an_idle_site_and_starts_in_time():
    site = one_site(cap_mw=50.0, gpus=64)
    arrivals = tuple(Arrival(float(i), JobKind.TRAINING, 16, 6 * 3600, job_id=f"beta-{i}", tenant="beta") for i in range(4)) + (
        Arrival(1200.0, JobKind.TRAINING, 32, 3600, job_id="acme-1", tenant="acme"),
    )
    sim = Simulator(scenario([site], arrivals, hours=2.0), SimConfig(tick_s=10.0, tenancy=TENANCY))
    seen, ran, runs = [], {}, []
    inner = sim.scheduler.on_event

    def on_event(job, event):
        if event.to_state == JobState.RUNNING:
            ran.setdefault(job.job_id, event.at - sim.scenario.start)
            runs.append((job.job_id, event.at - sim.scenario.start))
        if event.to_state == JobState.PREEMPTED:
            seen.append((job.job_id, job.preempted_for, event.reason, event.at - sim.scenario.start))
        inner(job, event)

    sim.scheduler.on_event = on_event
    sim.run()
    assert sorted(j for j, _, _, _ in seen) == ["beta-2", "beta-3"]  # the two placed last: beta's borrowed half
    assert all(for_ == "acme-1" and "reclaimed by tenant acme's contract" in why for _, for_, why, _ in seen)
    assert all(1200.0 <= at <= 1200.0 + 20.0 for *_, at in seen)  # old enough already: at the claim's first pass or so
    assert ran["acme-1"] - 1200.0 <= TENANCY.reclaim_grace_s  # met within the reclaim grace (here: checkpoint grace and ticks)
    jobs = sim.scheduler.jobs
    assert {jobs[j].state for j in ("beta-0", "beta-1")} == {JobState.RUNNING}  # its firm share was never touched
    resumed = [at for j, at in runs if j in ("beta-2", "beta-3") and at > 1200.0]
    assert len(resumed) == 2 and min(resumed) >= ran["acme-1"] + 3600.0  # no reclaim back: they resume once acme's job is done
    assert {jobs[j].state for j in ("beta-2", "beta-3")} == {JobState.RUNNING}


def test_a_cap_cut_takes_the_interruptible_contracts_training_first_whatever_its_priority():
    site = one_site(cap_mw=50.0, gpus=64)
    power = site.power
    floor = (power.gpus * power.gpu_idle_w + power.mining_floor_w) * power.overhead
    cut = cap_cut(site.site_id, floor + 40 * (power.gpu_load_w - power.gpu_idle_w) * power.overhead, 1800.0, 3600.0)  # room for 40 of 64 GPUs
    arrivals = (
        Arrival(0.0, JobKind.TRAINING, 32, 6 * 3600, priority=5, job_id="labs-hi", tenant="labs"),
        Arrival(0.0, JobKind.TRAINING, 32, 6 * 3600, priority=0, job_id="acme-lo", tenant="acme"),
    )
    contracts = TenancyPolicy(contracts=(Contract("acme", "r0", 32), Contract("labs", "r0", 32, service_class="interruptible")))
    stopped = {}
    for name, tenancy in (("contracts", contracts), ("none", None)):
        sim = Simulator(scenario([site], arrivals, events=(cut,), hours=1.0), SimConfig(tick_s=10.0, tenancy=tenancy))
        inner = sim.scheduler.on_event

        def on_event(job, event, inner=inner, name=name):
            if event.to_state == JobState.PREEMPTED:
                stopped.setdefault(name, []).append(job.job_id)
            inner(job, event)

        sim.scheduler.on_event = on_event
        sim.run()
    assert stopped == {"contracts": ["labs-hi"], "none": ["acme-lo"]}  # without contracts: the lower priority goes
