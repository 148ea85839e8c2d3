"""The shortcuts the scheduler's hot paths take change no answer (bench/scheduler_scale.py):
- JobTable keeps each site's GPUs in use as a running sum: after any sequence of job
  versions it equals the sum over the site's active jobs, counted afresh;
- ledger.claim_for keeps a job version's claim on that version: the same claim as made
  afresh, and a new version (dataclasses.replace) never inherits it;
- the controller leaves out the power figures of sites that can take no pending job
  (not READY, or fewer free GPUs than the smallest pending job): placement never reads them.
"""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.job_table import JobTable
from scheduler.core.jobs import ACTIVE, JobKind, JobSpec, JobState, Resources, new_job
from scheduler.core.ledger import _make_claim, claim_for
from scheduler.core.placement import SiteCapacity, place

SITES = ("a", "b", "c")
REGIONS = ("us", "eu")


def a_job(n: int, gpus: int, served: bool, region: str = "us"):
    spec = JobSpec(
        JobKind.INFERENCE if served else JobKind.TRAINING,
        "x",
        Resources(gpus=gpus),
        allowed_regions=(region,),
        serve_import_path="app:app" if served else "",
        min_replicas=1,
        max_replicas=4,
    )
    return new_job(f"job-{n}", "t", f"r{n}", spec, n, 0.0)[0]


versions = st.lists(
    st.tuples(st.integers(0, 5), st.integers(1, 4), st.booleans(), st.sampled_from(list(JobState)), st.sampled_from(SITES), st.integers(0, 4)),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(versions)
def test_gpus_in_use_is_the_sum_over_active_jobs_after_any_writes(writes):
    table = JobTable()
    for n, gpus, served, state, site, replicas in writes:
        job = table.get(f"job-{n}") or a_job(n, gpus, served)
        table[job.job_id] = dataclasses.replace(job, state=state, site_id=site, replicas=replicas)
    fresh = {}
    for job in table.values():
        if job.state in ACTIVE:
            used, count = fresh.get(job.site_id, (0, 0))
            fresh[job.site_id] = (used + job.total_gpus, count + 1)
    assert table.gpus_in_use() == fresh


def test_a_claim_is_made_once_per_job_version_and_never_inherited():
    job = dataclasses.replace(a_job(1, 2, served=True), state=JobState.RUNNING, site_id="a", replicas=3)
    first = claim_for(job)
    assert first == _make_claim(job) and claim_for(job) is first and first.gpus == 6
    bigger = dataclasses.replace(job, replicas=4)
    assert claim_for(bigger).gpus == 8 and claim_for(job).gpus == 6
    assert bigger == dataclasses.replace(job, replicas=4) and "_ledger_claim" not in dataclasses.asdict(job)


sites = st.lists(
    st.tuples(st.sampled_from(REGIONS), st.integers(0, 8), st.integers(0, 10), st.booleans(), st.floats(0, 20_000), st.floats(0, 100)),
    min_size=1,
    max_size=6,
)
pending = st.lists(st.tuples(st.integers(0, 8), st.sampled_from(REGIONS)), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(sites, pending)
def test_power_figures_of_sites_that_can_take_no_pending_job_are_never_read(site_rows, job_rows):
    jobs = [a_job(n, gpus, False, region) for n, (gpus, region) in enumerate(job_rows)]
    caps = [
        SiteCapacity(
            f"s{i}",
            region,
            total,
            used,
            accepts_work=ready,
            unavailable_because="" if ready else "drained",
            power_free_w=free_w,
            power_per_gpu_w=1000.0,
            mining_value_usd_per_mwh=value,
        )
        for i, (region, total, used, ready, free_w, value) in enumerate(site_rows)
    ]
    smallest = min(j.spec.total_gpus for j in jobs)
    blanked = [
        c if c.accepts_work and c.gpus_free >= smallest else dataclasses.replace(c, power_free_w=0.0, power_per_gpu_w=0.0, mining_value_usd_per_mwh=0.0)
        for c in caps
    ]
    assert place(jobs, blanked) == place(jobs, caps)
