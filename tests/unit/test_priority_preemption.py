"""Preemption for priority (core/priority.py): victim choice, the bounds (min run time,
priority gap), no thrash, the room kept for the waiting job, and its pending reasons."""

from __future__ import annotations

import dataclasses

from scheduler.core import runs
from scheduler.core.decisions import StopRun
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import Job, JobKind, JobSpec, JobState, Resources
from scheduler.core.placement import SiteCapacity
from scheduler.core.priority import PreemptionPolicy, schedule_pass
from scheduler.core.runs import RunReport, RunState

NOW = 100_000.0
POLICY = PreemptionPolicy(min_run_s=600, priority_gap=1)


def running(job_id, gpus, priority=0, started=NOW - 3600, checkpoint_at=0.0, kind=JobKind.TRAINING, site="s1", seq=1) -> Job:
    spec = JobSpec(kind, "python train.py", Resources(gpus=gpus), priority=priority, checkpoint_grace_s=30)
    return Job(job_id, "acme", job_id, spec, JobState.RUNNING, seq, 0.0, started, site_id=site, attempt=1, started_at=started, checkpoint_at=checkpoint_at)


def waiting(job_id, gpus, priority=10, seq=100, kind=JobKind.INFERENCE, regions=()) -> Job:
    spec = JobSpec(kind, "serve", Resources(gpus=gpus), priority=priority, allowed_regions=regions)
    return Job(job_id, "acme", job_id, spec, JobState.PENDING, seq, NOW, NOW)


def table(*jobs: Job) -> JobTable:
    t = JobTable()
    for j in jobs:
        t.put(j)
    return t


def sites(t: JobTable, *specs: tuple[str, int]) -> list[SiteCapacity]:
    usage = t.gpus_in_use()
    return [SiteCapacity(s, "us", total, usage.get(s, (0, 0))[0]) for s, total in specs]


def run_pass(t: JobTable, capacities=None, policy=POLICY, now=NOW):
    decision = schedule_pass(t.pending(), capacities or sites(t, ("s1", 64)), t, t.on_site, policy, now)
    t.take(decision)
    return decision


def stopped(decision) -> list[str]:
    return [o.run_id for o in decision.orders if isinstance(o, StopRun)]


def test_victims_lowest_priority_first_then_least_work_lost_and_only_as_many_as_needed():
    t = table(
        running("old-p0", 16, 0, checkpoint_at=NOW - 1800),
        running("fresh-ckpt-p0", 16, 0, checkpoint_at=NOW - 60),
        running("p1", 16, 1, checkpoint_at=NOW - 10),
        running("p2", 16, 2),
        waiting("inf", 24),
    )
    decision = run_pass(t)
    assert stopped(decision) == ["fresh-ckpt-p0-r1", "old-p0-r1"]  # priority 0 before 1; the least work lost first
    assert decision.preemptions == ["priority", "priority"]
    victim = t["fresh-ckpt-p0"]
    assert victim.state == JobState.PREEMPTED and victim.preempted_for == "inf"
    assert "preempted for higher-priority job inf" in decision.events[0].reason
    assert [o.checkpoint_grace_s for o in decision.orders] == [30, 30]  # with their checkpoint grace
    assert t["inf"].pending_reason == "waiting for 24 GPUs on s1 (us): preempting 2 lower-priority runs (grace 30 s)"


def test_a_larger_later_victim_makes_an_earlier_one_unneeded():
    t = table(running("small", 8, 0, checkpoint_at=NOW - 10), running("big", 32, 0, checkpoint_at=NOW - 20), running("p5", 24, 5), waiting("inf", 32))
    assert stopped(run_pass(t)) == ["big-r1"]


def test_min_run_time_protects_young_runs_and_the_reason_says_when():
    t = table(running("young", 64, 0, started=NOW - 200), waiting("inf", 8))
    decision = run_pass(t)
    assert stopped(decision) == [] and t["young"].state == JobState.RUNNING
    assert t["inf"].pending_reason.endswith("lower-priority runs cannot be preempted yet (min run time 600 s; within 400 s)")
    assert stopped(run_pass(t, now=NOW + 400)) == ["young-r1"]


def test_priority_gap_and_inference_is_never_a_victim():
    t = table(running("p9", 32, 9), running("svc", 32, 0, kind=JobKind.INFERENCE), waiting("inf", 8, priority=10))
    assert stopped(run_pass(t, policy=dataclasses.replace(POLICY, priority_gap=2))) == []  # 10 - 9 < 2
    assert stopped(run_pass(t)) == ["p9-r1"]  # gap 1: the training run, never the service of priority 0


def test_equal_priority_never_preempts_and_disabled_does_nothing():
    t = table(running("a", 64, 5), waiting("b", 8, priority=5, kind=JobKind.TRAINING))
    assert stopped(run_pass(t)) == []
    t = table(running("a", 64, 0), waiting("b", 8))
    assert stopped(run_pass(t, policy=dataclasses.replace(POLICY, enabled=False))) == []


def test_room_is_reserved_while_victims_stop_and_no_new_victim_is_taken():
    # 16 free, 16 held by a low-priority run, 32 by a high one; a 32-GPU job preempts the low one;
    # a small job of lower priority behind it must not take the 16 free GPUs the big one counts on.
    t = table(
        running("victim", 16, 0), running("high", 32, 20), waiting("inf", 32, seq=100), waiting("small-train", 16, priority=1, seq=101, kind=JobKind.TRAINING)
    )
    decision = run_pass(t)
    assert stopped(decision) == ["victim-r1"]
    assert [j.job_id for j in decision.jobs if j.state == JobState.SCHEDULED] == []  # small-train did not take the reserved GPUs
    assert t["small-train"].pending_reason.startswith("1 job ahead; ")
    # The next passes, while the victim checkpoints: nothing new is stopped, the room stays kept.
    again = run_pass(t, now=NOW + 5)
    assert stopped(again) == [] and again.preemptions == [] and t["small-train"].state == JobState.PENDING
    assert "preempting 1 lower-priority run (grace 30 s)" in t["inf"].pending_reason
    # The victim is gone: requeued, resumes from its checkpoint; the waiting job starts.
    t.take(runs.on_run_report(t["victim"], "s1", RunReport("victim-r1", RunState.STOPPED), NOW + 20))
    assert t["victim"].state == JobState.PENDING and t["victim"].preempted_for == ""
    started = run_pass(t, now=NOW + 21)
    placed = {j.job_id for j in started.jobs if j.state == JobState.SCHEDULED}
    assert "inf" in placed and "victim" not in placed


def test_no_thrash_a_requeued_victim_does_not_preempt_back():
    t = table(running("inf", 64, 10, kind=JobKind.INFERENCE, started=NOW - 5), waiting("victim", 64, priority=0, kind=JobKind.TRAINING))
    assert stopped(run_pass(t)) == []
    t = table(running("hi", 64, 10, started=NOW - 5000), waiting("victim", 64, priority=0, kind=JobKind.TRAINING))
    assert stopped(run_pass(t)) == []  # lower priority: it waits, whatever the others ran


def test_power_short_site_makes_room_by_the_power_victims_free():
    t = table(running("victim", 8, 0), waiting("inf", 8))
    capacity = [SiteCapacity("s1", "us", 64, 8, power_free_w=1_000.0, power_per_gpu_w=1_000.0)]
    decision = run_pass(t, capacities=capacity)
    assert stopped(decision) == ["victim-r1"]


def test_the_site_needing_the_least_goes_first_and_regions_are_kept():
    t = table(running("p1-s1", 64, 1, site="s1"), running("p0-s2", 64, 0, site="s2"), waiting("inf", 8))
    assert stopped(run_pass(t, capacities=sites(t, ("s1", 64), ("s2", 64)))) == ["p0-s2-r1"]
    t = table(running("p0", 64, 0, site="s1"), waiting("eu-job", 8, regions=("eu",)))
    assert stopped(run_pass(t)) == []  # s1 is in us


def test_queue_position_counts_only_jobs_that_could_run_where_it_can():
    t = table(running("full", 64, 20), waiting("eu-1", 8, priority=1, seq=1, regions=("eu",)), waiting("us-1", 8, priority=1, seq=2, regions=("us",)),
              waiting("us-2", 8, priority=1, seq=3, regions=("us",)), waiting("any", 8, priority=1, seq=4))
    run_pass(t)
    assert not t["us-1"].pending_reason[0].isdigit()
    assert t["us-2"].pending_reason.startswith("1 job ahead; ")
    assert t["any"].pending_reason.startswith("3 jobs ahead; ")
