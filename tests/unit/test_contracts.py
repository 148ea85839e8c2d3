"""Contracts and fair share (core/contracts.py, core/fair_share.py, core/reclaim.py) through
the scheduling pass: who is borrowing, the queue order (firm first, then DRF by weight,
then priority), reclaim of borrowed runs for a firm claim (checkpoint grace, bounds, no
thrash, inference kept), burst limits, the pending reasons, and the config's checks."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.core import runs
from scheduler.core.contracts import Book, Contract, TenancyPolicy, cut_rank
from scheduler.core.decisions import StopRun
from scheduler.core.fair_share import FairQueue
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import Job, JobKind, JobSpec, JobState, Resources
from scheduler.core.placement import SiteCapacity
from scheduler.core.priority import PreemptionPolicy, schedule_pass
from scheduler.core.runs import RunReport, RunState
from scheduler.server.config import SchedulerConfig, tenancy_policy

NOW = 100_000.0
PRIORITY = PreemptionPolicy(min_run_s=600, priority_gap=1)
CONTRACTS = TenancyPolicy(
    contracts=(Contract("acme", "us", 32), Contract("beta", "us", 32), Contract("labs", "us", 0, service_class="interruptible")),
    reclaim_grace_s=600,
)


def running(job_id, gpus, tenant, priority=0, started=NOW - 3600, kind=JobKind.TRAINING, site="s1", seq=1, checkpoint_at=0.0, grace=30) -> Job:
    spec = JobSpec(kind, "python train.py", Resources(gpus=gpus), priority=priority, checkpoint_grace_s=grace)
    return Job(job_id, tenant, job_id, spec, JobState.RUNNING, seq, 0.0, started, site_id=site, attempt=1, started_at=started, checkpoint_at=checkpoint_at)


def waiting(job_id, gpus, tenant, priority=0, seq=100, kind=JobKind.TRAINING, regions=()) -> Job:
    spec = JobSpec(kind, "python train.py", Resources(gpus=gpus), priority=priority, allowed_regions=regions)
    return Job(job_id, tenant, job_id, spec, JobState.PENDING, seq, NOW, NOW)


def table(*jobs: Job) -> JobTable:
    t = JobTable()
    for j in jobs:
        t.put(j)
    return t


def sites(t: JobTable, *specs: tuple[str, int], region="us", **power) -> list[SiteCapacity]:
    usage = t.gpus_in_use()
    return [SiteCapacity(s, region, total, usage.get(s, (0, 0))[0], **power) for s, total in specs]


def run_pass(t: JobTable, capacities=None, tenancy=CONTRACTS, policy=PRIORITY, now=NOW):
    decision = schedule_pass(t.pending(), capacities or sites(t, ("s1", 64)), t, t.on_site, policy, now, tenancy)
    t.take(decision)
    return decision


def stopped(decision) -> list[str]:
    return [o.run_id for o in decision.orders if isinstance(o, StopRun)]


def placed(decision) -> list[str]:
    return [j.job_id for j in decision.jobs if j.state == JobState.SCHEDULED]


# ---------------------------------------------------------------- who borrows
def test_runs_fill_the_firm_share_inference_first_then_oldest_and_the_rest_is_borrowed():
    t = table(
        running("old", 16, "acme", started=NOW - 5000),
        running("new", 16, "acme", started=NOW - 100),
        running("svc", 16, "acme", kind=JobKind.INFERENCE, started=NOW - 10),
        running("small", 8, "acme", started=NOW - 50),
        running("other", 16, "nobody"),
    )
    book = Book(CONTRACTS, sites(t, ("s1", 128)), t.active())
    # 32 firm GPUs: the service (16), then the oldest training (16); "new" no longer fits, nor "small" (a later, smaller one would)
    assert book.borrowed == {"new", "small", "other"}  # a tenant with no contract borrows all it runs
    assert book.use("acme", "us") == (56, 0.0)


def test_the_mw_term_counts_it_power_with_the_sites_overhead():
    policy = TenancyPolicy(contracts=(Contract("acme", "us", 1000, firm_mw=0.02),))
    t = table(running("a", 8, "acme", started=NOW - 500), running("b", 8, "acme", started=NOW - 100))
    # 1,100 W at the meter per GPU, overhead 1.1: 1,000 W IT per GPU; 8 GPUs = 8 kW, 16 GPUs = 16 kW <= 20 kW
    capacities = sites(t, ("s1", 64), gpu_w=1100.0, overhead=1.1)
    assert Book(policy, capacities, t.active()).borrowed == set()
    tight = TenancyPolicy(contracts=(Contract("acme", "us", 1000, firm_mw=0.012),))
    assert Book(tight, capacities, t.active()).borrowed == {"b"}


def test_dominant_share_is_the_larger_of_gpus_and_power_over_the_weight():
    policy = TenancyPolicy(weights=(("acme", 2.0),))
    t = table(running("a", 16, "acme"), running("b", 16, "beta"))
    # 64 GPUs; power: 64 x 1 kW IT, but the cap leaves AI 32 kW: power binds at twice the GPU share
    book = Book(policy, sites(t, ("s1", 64), gpu_w=1000.0, ai_power_w=32_000.0), t.active())
    assert book.share("beta") == pytest.approx(0.5)
    assert book.share("acme") == pytest.approx(0.25)


# ---------------------------------------------------------------- queue order
def test_queue_firm_claims_first_then_lowest_weighted_dominant_share_then_priority():
    policy = TenancyPolicy(contracts=(Contract("acme", "us", 16),), weights=(("beta", 1.0), ("gamma", 4.0)))
    t = table(running("b-run", 16, "beta"), running("g-run", 32, "gamma"))
    book = Book(policy, sites(t, ("s1", 128)), t.active())
    pending = [
        waiting("beta-hi", 8, "beta", priority=5, seq=1),
        waiting("beta-lo", 8, "beta", priority=0, seq=0),
        waiting("gamma-lo", 8, "gamma", priority=0, seq=2),
        waiting("acme-big", 32, "acme", priority=9, seq=3),  # beyond acme's firm 16: borrows
        waiting("acme-firm", 8, "acme", priority=1, seq=4),  # within: a firm claim goes first, even before acme's own priority 9
    ]
    order = [j.job_id for j in FairQueue(book).order(pending)]
    # Then the borrowers by weighted dominant share: acme 0, gamma 32/128/4 = 0.0625, beta 16/128 = 0.125;
    # beta's own jobs by priority (5 before 0, whatever their submission order).
    assert order == ["acme-firm", "acme-big", "gamma-lo", "beta-hi", "beta-lo"]


def test_placing_a_job_raises_its_tenants_share_before_the_next_pick():
    t = table()
    pending = [waiting(f"a{i}", 8, "acme", seq=i) for i in range(4)] + [waiting(f"b{i}", 8, "beta", seq=10 + i) for i in range(4)]
    for job in pending:
        t.put(job)
    decision = run_pass(t, capacities=sites(t, ("s1", 32)), tenancy=TenancyPolicy(weights=(("acme", 1.0),)))
    assert sorted(placed(decision)) == ["a0", "a1", "b0", "b1"]  # alternating by share, not acme's four first


# ---------------------------------------------------------------- reclaim
def test_a_firm_claim_reclaims_borrowed_runs_of_other_tenants_with_capped_grace():
    t = table(
        running("beta-firm", 32, "beta", started=NOW - 9000),
        running("beta-borrowed", 16, "beta", started=NOW - 4000, grace=900),
        running("labs-run", 16, "labs", started=NOW - 3000),
        waiting("acme-job", 16, "acme"),
    )
    decision = run_pass(t)
    assert stopped(decision) == ["labs-run-r1"]  # the interruptible class goes first
    assert decision.preemptions == ["contract"]
    victim = t["labs-run"]
    assert victim.state == JobState.PREEMPTED and victim.preempted_for == "acme-job"
    assert "reclaimed by tenant acme's contract for job acme-job" in victim.reason
    assert t["acme-job"].pending_reason == "waiting for 16 GPUs on s1 (us): reclaiming 1 borrowed run for tenant acme's contract (grace 30 s)"
    # The next pass keeps the room, takes no new victim; once the run is gone the claim starts.
    assert stopped(run_pass(t, now=NOW + 5)) == []
    t.take(runs.on_run_report(t["labs-run"], "s1", RunReport("labs-run-r1", RunState.STOPPED), NOW + 20))
    assert placed(run_pass(t, now=NOW + 21)) == ["acme-job"]
    # No thrash: labs is over its (empty) firm share; requeued, it waits and reclaims nothing.
    again = run_pass(t, now=NOW + 30)
    assert stopped(again) == [] and t["labs-run"].state == JobState.PENDING
    assert "tenant labs is at its 0-GPU contract in us" in t["labs-run"].pending_reason


def test_reclaim_caps_the_checkpoint_grace_at_half_the_reclaim_grace():
    t = table(running("beta-firm", 32, "beta", started=NOW - 9000), running("beta-borrowed", 32, "beta", started=NOW - 4000, grace=900), waiting("acme-job", 16, "acme"))
    decision = run_pass(t)
    assert [(o.run_id, o.checkpoint_grace_s) for o in decision.orders if isinstance(o, StopRun)] == [("beta-borrowed-r1", 300)]


def test_firm_runs_and_inference_are_never_reclaimed():
    # beta runs more inference than its contract: the service is borrowed, yet never a victim of reclaim
    t = table(running("svc", 48, "beta", kind=JobKind.INFERENCE), running("labs-young", 16, "labs", started=NOW - 10), waiting("acme-job", 16, "acme"))
    assert Book(CONTRACTS, sites(t, ("s1", 64)), t.active()).borrowed == {"svc", "labs-young"}
    decision = run_pass(t)
    assert stopped(decision) == []
    assert "borrowed runs there are reclaimable within 290 s" in t["acme-job"].pending_reason  # the training, once old enough
    # Firm runs are not reclaimed, and a job beyond its own tenant's share reclaims nothing.
    t = table(running("beta-firm", 32, "beta"), running("acme-firm", 32, "acme"), waiting("acme-more", 16, "acme"))
    assert stopped(run_pass(t)) == []
    t = table(running("beta-firm", 32, "beta"), running("acme-firm", 16, "acme"), running("labs", 16, "labs"), waiting("acme-more", 32, "acme"))
    assert stopped(run_pass(t)) == []  # 16 + 32 > acme's 32: not a firm claim


def test_young_borrowed_runs_are_protected_but_the_claim_keeps_the_free_gpus():
    t = table(
        running("beta-firm", 24, "beta", started=NOW - 9000),
        running("beta-young", 32, "beta", started=NOW - 100),
        waiting("acme-job", 16, "acme", seq=100),
        waiting("beta-more", 8, "beta", seq=101),
    )
    decision = run_pass(t)
    assert stopped(decision) == [] and placed(decision) == []  # the 8 free GPUs are kept for the claim
    assert t["acme-job"].pending_reason.endswith("borrowed runs there are reclaimable within 200 s")
    assert stopped(run_pass(t, now=NOW + 200)) == ["beta-young-r1"]  # min(min_run_s 600, grace 600 / 2)


def test_under_contracts_a_service_displaces_its_own_tenants_training_never_another_tenants_firm_run():
    t = table(running("beta-firm", 32, "beta", priority=0), running("acme-firm", 32, "acme", priority=0), waiting("acme-svc", 16, "acme", priority=10, kind=JobKind.INFERENCE))
    decision = run_pass(t)
    assert stopped(decision) == ["acme-firm-r1"]  # services come first in acme's share: its own training gives way, not beta's
    assert decision.preemptions == ["priority"]


def test_a_job_beyond_its_firm_share_preempts_nothing():
    t = table(running("acme-firm", 32, "acme", priority=0), running("labs", 32, "labs", priority=0), waiting("acme-hi", 16, "acme", priority=5))
    assert stopped(run_pass(t)) == []  # 32 + 16 > acme's 32: it waits to borrow, it stops neither its own run nor labs' borrowed one
    weights_only = TenancyPolicy(weights=(("acme", 1.0),))
    assert stopped(run_pass(t, tenancy=weights_only)) == ["acme-firm-r1"]  # weights alone: its own tenant's runs only


# ---------------------------------------------------------------- burst and reasons
def test_burst_limit_keeps_a_tenant_out_of_a_region_and_the_reason_says_so():
    policy = TenancyPolicy(contracts=(Contract("acme", "us", 16, burst_gpus=16), Contract("acme", "eu", 0)))
    t = table(running("a1", 16, "acme"), running("a2", 16, "acme", seq=2), waiting("a3", 8, "acme", regions=("us",)), waiting("a4", 8, "acme"))
    capacities = sites(t, ("s1", 64)) + sites(t, ("e1", 8), region="eu")
    decision = run_pass(t, capacities=capacities, tenancy=policy)
    assert placed(decision) == ["a4"] and t["a4"].site_id == "e1"  # us is out of bounds: 32 in use = 16 firm + 16 burst
    assert t["a3"].pending_reason == "tenant acme is at its 16-GPU contract + 16 burst in us (32 in use)"


def test_a_waiting_borrower_says_where_its_tenant_stands_after_the_jobs_ahead():
    t = table(running("a1", 32, "acme"), running("b1", 32, "beta"), waiting("b2", 8, "beta", seq=5), waiting("a2", 8, "acme", seq=6))
    run_pass(t)
    assert t["b2"].pending_reason.startswith("tenant beta is at its 32-GPU contract in us (32 in use); no site in any region has 8 free GPUs")
    assert t["a2"].pending_reason.startswith("1 job ahead; tenant acme is at its 32-GPU contract in us (32 in use)")


def test_without_contracts_or_weights_the_pass_is_priority_and_fifo():
    t = table(waiting("b", 8, "beta", priority=0, seq=1), waiting("a", 8, "acme", priority=5, seq=2))
    decision = run_pass(t, capacities=sites(t, ("s1", 8)), tenancy=TenancyPolicy())
    assert placed(decision) == ["a"]


# ---------------------------------------------------------------- cut order
def test_cut_rank_interruptible_then_borrowed_then_firm_and_configurable():
    t = table(running("labs", 8, "labs"), running("acme-firm", 32, "acme", started=NOW - 9000), running("acme-over", 8, "acme"))
    book = Book(CONTRACTS, sites(t, ("s1", 64)), t.active())
    ranks = {j: cut_rank(CONTRACTS, book, t[j], "us") for j in ("labs", "acme-firm", "acme-over")}
    assert ranks == {"labs": 0, "acme-over": 1, "acme-firm": 2}
    flipped = dataclasses.replace(CONTRACTS, cut_order=("borrowed", "interruptible", "firm"))
    assert cut_rank(flipped, book, t["labs"], "us") == 0  # labs' run is borrowed too (its firm share is 0)
    assert cut_rank(flipped, book, t["acme-firm"], "us") == 2


# ---------------------------------------------------------------- config
def test_the_config_builds_the_policy():
    config = SchedulerConfig(
        regions=["us", "eu"],
        contracts=[
            {"tenant": "acme", "region": "us", "firm_gpus": 512, "firm_mw": 0.8, "burst_gpus": 128, "class": "firm"},
            {"tenant": "labs", "region": "eu", "firm_mw": 0.1, "class": "interruptible"},
        ],
        fair_share={"weights": {"acme": 2}, "reclaim_grace_s": 300, "cut_order": ["borrowed", "interruptible", "firm"]},
    )
    policy = tenancy_policy(config)
    assert policy.contract("acme", "us") == Contract("acme", "us", 512, 0.8, 128, "firm")
    assert policy.contract("labs", "eu").firm_gpus == float("inf") and policy.contract("labs", "eu").service_class == "interruptible"
    assert policy.weight("acme") == 2.0 and policy.weight("other") == 1.0
    assert (policy.reclaim_grace_s, policy.cut_order) == (300, ("borrowed", "interruptible", "firm"))
    assert not tenancy_policy(SchedulerConfig()).enabled


@pytest.mark.parametrize(
    "data, message",
    [
        ({"contracts": [{"tenant": "acme", "region": "us"}]}, "contract of 'acme' in 'us' needs firm_gpus or firm_mw"),
        ({"contracts": [{"tenant": "acme", "region": "mars", "firm_gpus": 8}]}, "region 'mars' of tenant 'acme' is not one of regions (us, eu)"),
        ({"contracts": [{"tenant": "acme", "region": "us", "firm_gpus": 8}] * 2}, "tenant 'acme' has two contracts in region 'us'"),
        ({"contracts": [{"tenant": "acme", "region": "us", "firm_gpus": -1}]}, "contracts.0.firm_gpus: Input should be greater than or equal to 0"),
        ({"contracts": [{"tenant": "acme", "region": "us", "firm_gpus": 8, "class": "gold"}]}, "contracts.0.class: Input should be 'firm' or 'interruptible'"),
        ({"fair_share": {"weights": {"acme": 0}}}, "weights must be > 0 (not for acme)"),
        ({"fair_share": {"cut_order": ["firm", "firm", "borrowed"]}}, "cut_order must name each of interruptible, borrowed, firm once"),
        ({"fair_share": {"reclaim_grace_s": 0}}, "fair_share.reclaim_grace_s: Input should be greater than 0"),
    ],
)
def test_bad_contracts_are_refused_with_a_clear_line(tmp_path, data, message):
    import yaml

    from scheduler.server.config import load_config

    path = tmp_path / "scheduler.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert message in str(err.value)
