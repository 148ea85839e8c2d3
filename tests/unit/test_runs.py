"""How jobs react to agents' run reports, reconnects, lost sites, cancels and time."""

import dataclasses

import pytest

from scheduler.core.decisions import StartRun, StopRun
from scheduler.core.errors import FailedPrecondition
from scheduler.core.jobs import JobState
from scheduler.core.runs import RunReport, RunState, cancel, enforce_max_runtime, on_register, on_run_report, release_site, schedule
from tests.builders import a_job

S = JobState


def report(job, state, message=""):
    return RunReport(job.run_id, state, message)


@pytest.mark.parametrize(
    "start,reported,expected",
    [
        (S.SCHEDULED, RunState.STARTING, S.STARTING),
        (S.SCHEDULED, RunState.RUNNING, S.RUNNING),
        (S.STARTING, RunState.RUNNING, S.RUNNING),
        (S.RUNNING, RunState.SUCCEEDED, S.SUCCEEDED),
        (S.STARTING, RunState.FAILED, S.FAILED),
        (S.RUNNING, RunState.STOPPED, S.FAILED),
        (S.CANCELLING, RunState.STOPPED, S.CANCELLED),
        (S.CANCELLING, RunState.SUCCEEDED, S.SUCCEEDED),
    ],
)
def test_reports_move_the_current_run(start, reported, expected):
    job = a_job().on("us-1", start).build()
    decision = on_run_report(job, "us-1", report(job, reported, "boom"), now=3.0)
    assert [j.state for j in decision.jobs] == [expected]
    assert decision.events[0].from_state == start and decision.events[0].to_state == expected
    assert decision.orders == []


def test_a_failed_run_keeps_rays_message_as_the_reason():
    job = a_job().on("us-1", S.RUNNING).build()
    decision = on_run_report(job, "us-1", report(job, RunState.FAILED, "exit code 3"), now=1.0)
    assert decision.jobs[0].reason == f"run {job.run_id} failed: exit code 3"


def test_a_repeated_running_report_changes_nothing():
    job = a_job().on("us-1", S.RUNNING).build()
    assert not on_run_report(job, "us-1", report(job, RunState.RUNNING), now=1.0)


def test_a_stale_run_still_active_is_stopped():
    job = a_job().on("us-2", S.RUNNING, attempt=2).build()
    old_run = f"{job.job_id}-r1"
    decision = on_run_report(job, "us-1", RunReport(old_run, RunState.RUNNING), now=1.0)
    assert decision.jobs == []
    assert decision.orders == [StopRun("us-1", old_run, f"stale run (job is RUNNING, current run {job.run_id})")]


def test_a_report_for_an_unknown_job_stops_that_run_but_ignores_finished_ones():
    assert on_run_report(None, "us-1", RunReport("job-x-r1", RunState.RUNNING), 1.0).orders == [StopRun("us-1", "job-x-r1", "stale run (unknown job)")]
    assert not on_run_report(None, "us-1", RunReport("job-x-r1", RunState.SUCCEEDED), 1.0)


def test_register_resends_start_for_a_scheduled_run_the_agent_lacks():
    job = a_job().on("us-1", S.SCHEDULED).build()
    decision = on_register("us-1", [job], {}, {job.job_id: job}, now=1.0)
    assert decision.jobs == []
    assert decision.orders == [StartRun("us-1", job.run_id, job.job_id, job.tenant, job.spec)]


def test_register_keeps_a_running_run_the_agent_still_has():
    job = a_job().on("us-1", S.RUNNING).build()
    decision = on_register("us-1", [job], {job.run_id: report(job, RunState.RUNNING)}, {job.job_id: job}, now=1.0)
    assert not decision


def test_register_catches_up_on_a_run_that_finished_while_disconnected():
    job = a_job().on("us-1", S.RUNNING).build()
    decision = on_register("us-1", [job], {job.run_id: report(job, RunState.SUCCEEDED)}, {job.job_id: job}, now=1.0)
    assert [j.state for j in decision.jobs] == [S.SUCCEEDED]


def test_register_requeues_a_running_run_the_agent_lost():
    job = a_job().on("us-1", S.RUNNING).build()
    decision = on_register("us-1", [job], {}, {job.job_id: job}, now=1.0)
    assert [j.state for j in decision.jobs] == [S.PENDING]
    assert "requeued (attempt 1 of 4)" in decision.jobs[0].reason


def test_register_stops_a_cancelling_run_still_running():
    job = a_job().on("us-1", S.CANCELLING).build()
    job = dataclasses.replace(job, reason="cancelled by tenant", stop_outcome=S.CANCELLED)
    decision = on_register("us-1", [job], {job.run_id: report(job, RunState.RUNNING)}, {job.job_id: job}, now=1.0)
    assert decision.orders == [StopRun("us-1", job.run_id, "cancelled by tenant")]


def test_register_stops_runs_of_finished_jobs_found_on_the_site():
    done = a_job().on("us-1", S.SUCCEEDED).build()
    decision = on_register("us-1", [], {done.run_id: report(done, RunState.RUNNING)}, {done.job_id: done}, now=1.0)
    assert decision.orders == [StopRun("us-1", done.run_id, f"stale run (job is SUCCEEDED, current run {done.run_id})")]


def test_register_leaves_foreign_ray_jobs_alone():
    assert not on_register("us-1", [], {"raysubmit_abc": RunReport("raysubmit_abc", RunState.RUNNING)}, {}, now=1.0)


def test_a_lost_site_requeues_its_runs_until_retries_run_out():
    fresh = a_job().on("us-1", S.RUNNING, attempt=1).spec_with(max_retries=1).build()
    tired = a_job().on("us-1", S.STARTING, attempt=2).spec_with(max_retries=1).build()
    elsewhere = a_job().on("eu-1", S.RUNNING).build()
    decision = release_site("us-1", [fresh, tired, elsewhere], timeout_s=30, now=100.0)
    states = {j.job_id: j.state for j in decision.jobs}
    assert states == {fresh.job_id: S.PENDING, tired.job_id: S.FAILED}
    assert "site us-1 unreachable for more than 30s" in decision.events[0].reason
    assert "no retries left" in decision.events[1].reason


def test_cancel_of_a_pending_job_is_immediate():
    job = a_job().build()
    decision = cancel(job, "", now=1.0)
    assert [j.state for j in decision.jobs] == [S.CANCELLED] and decision.orders == []


def test_cancel_of_a_running_job_stops_its_run_first():
    job = a_job().on("us-1", S.RUNNING).build()
    decision = cancel(job, "not needed", now=1.0)
    assert [j.state for j in decision.jobs] == [S.CANCELLING]
    assert decision.orders == [StopRun("us-1", job.run_id, "not needed")]


def test_cancel_is_idempotent_and_refuses_finished_jobs():
    assert not cancel(a_job().on("us-1", S.CANCELLING).build(), "", 1.0)
    assert not cancel(a_job().on("us-1", S.CANCELLED).build(), "", 1.0)
    with pytest.raises(FailedPrecondition):
        cancel(a_job().on("us-1", S.SUCCEEDED).build(), "", 1.0)


def test_overrunning_max_runtime_stops_the_run_and_fails_the_job():
    job = dataclasses.replace(a_job().on("us-1", S.RUNNING).spec_with(max_runtime_s=60).build(), started_at=100.0)
    assert not enforce_max_runtime([job], now=160.0)
    decision = enforce_max_runtime([job], now=161.0)
    stopping = decision.jobs[0]
    assert stopping.state == S.CANCELLING and stopping.stop_outcome == S.FAILED
    assert decision.orders == [StopRun("us-1", job.run_id, "exceeded max_runtime_s=60")]
    final = on_run_report(stopping, "us-1", report(stopping, RunState.STOPPED), now=162.0).jobs[0]
    assert final.state == S.FAILED and "exceeded max_runtime_s=60" in final.reason


def test_schedule_starts_a_new_attempt_and_passes_on_changed_pending_reasons():
    placed = a_job().build()
    waiting = a_job().build()
    unchanged = dataclasses.replace(a_job().build(), pending_reason="same")
    jobs = {j.job_id: j for j in (placed, waiting, unchanged)}
    decision = schedule([(placed.job_id, "us-1")], {waiting.job_id: "no site", unchanged.job_id: "same"}, jobs, now=2.0)
    scheduled = decision.jobs[0]
    assert (scheduled.state, scheduled.attempt, scheduled.site_id) == (S.SCHEDULED, 1, "us-1")
    assert decision.orders == [StartRun("us-1", f"{placed.job_id}-r1", placed.job_id, placed.tenant, placed.spec)]
    assert [j.job_id for j in decision.jobs] == [placed.job_id]
    assert decision.pending_reasons == {waiting.job_id: "no site"}  # derived, not a transition, not stored
    assert len(decision.events) == 1


# ------------------------------------------------------------------ the fence: runs of one job never overlap
def test_a_lost_sites_run_lingers_and_a_new_run_there_waits_for_its_end():
    job = a_job().on("us-1", S.RUNNING, attempt=1).build()
    [requeued] = release_site("us-1", [job], 30, now=10.0).jobs
    assert requeued.state == S.PENDING and requeued.lingering == (("us-1", job.run_id),)
    # Placed on the lost site again: SCHEDULED, but no start while run 1 may still be there.
    placed = schedule([(job.job_id, "us-1")], {}, {job.job_id: requeued}, now=11.0)
    [scheduled] = placed.jobs
    assert scheduled.run_id.endswith("-r2") and placed.orders == []
    assert f"starts once {job.run_id} there is confirmed stopped" in scheduled.reason
    # The agent comes back listing run 1 as running: it is stopped first, and run 2 still waits.
    back = on_register("us-1", [scheduled], {job.run_id: report(job, RunState.RUNNING)}, {job.job_id: scheduled}, now=12.0)
    assert [type(o) for o in back.orders] == [StopRun] and back.orders[0].run_id == job.run_id
    # Its end is confirmed: the lingering run is forgotten and run 2 starts.
    gone = on_run_report(scheduled, "us-1", report(job, RunState.STOPPED), now=13.0)
    [started] = gone.jobs
    assert started.lingering == () and gone.orders == [StartRun("us-1", scheduled.run_id, job.job_id, job.tenant, job.spec)]


def test_a_lost_sites_run_does_not_hold_back_a_start_on_another_site():
    job = a_job().on("us-1", S.RUNNING, attempt=1).build()
    [requeued] = release_site("us-1", [job], 30, now=10.0).jobs
    placed = schedule([(job.job_id, "us-2")], {}, {job.job_id: requeued}, now=11.0)
    assert [o.run_id for o in placed.orders] == [f"{job.job_id}-r2"]


def test_an_agent_that_no_longer_lists_a_lingering_run_confirms_it_gone():
    job = a_job().on("us-1", S.RUNNING, attempt=1).build()
    [requeued] = release_site("us-1", [job], 30, now=10.0).jobs
    [scheduled] = schedule([(job.job_id, "us-1")], {}, {job.job_id: requeued}, now=11.0).jobs
    back = on_register("us-1", [scheduled], {}, {job.job_id: scheduled}, now=12.0)
    assert back.jobs[-1].lingering == () and [o.run_id for o in back.orders] == [scheduled.run_id]


def test_a_lost_start_is_ordered_again_but_not_while_a_lingering_run_may_be_there():
    job = a_job().on("us-1", S.SCHEDULED, attempt=2).build()
    assert [o.run_id for o in on_run_report(job, "us-1", report(job, RunState.UNKNOWN), now=1.0).orders] == [job.run_id]
    fenced = dataclasses.replace(job, lingering=(("us-1", f"{job.job_id}-r1"),))
    assert on_run_report(fenced, "us-1", report(fenced, RunState.UNKNOWN), now=1.0).orders == []
