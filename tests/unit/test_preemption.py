"""Checkpointed preemption: the core's rules (runs.preempt and friends), the checkpoint
contract's files (powerplane_sdk) and the agent's graceful stop (agents/checkpointing)."""

from __future__ import annotations

import dataclasses
import json

from agents.checkpointing import RunCheckpoints as AgentCheckpoints
from powerplane_sdk.checkpoints import RunCheckpoints, preempt_file, read_state
from scheduler.core import runs
from scheduler.core.decisions import StopRun
from scheduler.core.jobs import Job, JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunProgress, RunReport, RunState
from tests.builders import FakeClock

NOW = 1_000.0


def job(kind=JobKind.TRAINING, state=JobState.RUNNING, grace=30, **changes) -> Job:
    spec = JobSpec(kind, "python train.py", Resources(gpus=4), checkpoint_grace_s=grace)
    base = Job("j1", "acme", "r", spec, state, seq=1, created_at=0, updated_at=NOW, site_id="tx-1", attempt=1)
    return dataclasses.replace(base, **changes)


def test_running_training_is_asked_to_checkpoint_within_its_grace_and_holds_its_place():
    decision = runs.preempt(job(), "cap cut", NOW)
    [stop] = decision.orders
    assert stop == StopRun("tx-1", "j1-r1", "cap cut", checkpoint_grace_s=30)
    [preempted] = decision.jobs
    assert preempted.state == JobState.PREEMPTED and preempted.preemptions == 1
    assert "asked to checkpoint within 30s" in decision.events[0].reason


def test_the_grid_can_shorten_the_grace_and_inference_gets_none():
    assert runs.preempt(job(), "cut", NOW, max_grace_s=7.9).orders[0].checkpoint_grace_s == 7
    assert runs.preempt(job(), "cut", NOW, max_grace_s=0).orders[0].checkpoint_grace_s == 0
    assert runs.preempt(job(grace=5), "cut", NOW, max_grace_s=60).orders[0].checkpoint_grace_s == 5
    assert runs.preempt(job(JobKind.INFERENCE), "cut", NOW).orders[0].checkpoint_grace_s == 0


def test_a_run_preempted_before_it_ran_is_stopped_now_and_requeued_once_confirmed_gone():
    decision = runs.preempt(job(state=JobState.STARTING), "cut", NOW)
    [stopping] = decision.jobs
    assert stopping.state == JobState.PREEMPTED and decision.orders == [StopRun("tx-1", "j1-r1", "cut", checkpoint_grace_s=0)]
    # Its start may have reached Ray: no new run until the agent says this one is gone.
    assert runs.on_run_report(stopping, "tx-1", RunReport("j1-r1", RunState.STARTING), NOW + 1).jobs == []
    [requeued] = runs.on_run_report(stopping, "tx-1", RunReport("j1-r1", RunState.UNKNOWN, "Ray has no such job"), NOW + 2).jobs
    assert requeued.state == JobState.PENDING and requeued.preemptions == 1 and requeued.attempt == 1


def test_when_the_preempted_run_is_gone_the_job_is_requeued_with_the_work_it_lost():
    preempted = job(state=JobState.PREEMPTED, progress_step=45, progress_at=NOW + 9.0, checkpoint_step=40, checkpoint_at=NOW + 4.0)
    decision = runs.on_run_report(preempted, "tx-1", RunReport("j1-r1", RunState.STOPPED), NOW + 10)
    [requeued] = decision.jobs
    assert requeued.state == JobState.PENDING and requeued.pending_reason == "requeued after preemption"
    reason = decision.events[0].reason
    assert "stopped at step 45" in reason and "checkpoint at step 40" in reason and "work lost: 5 steps, 5.0s" in reason
    assert runs.work_lost(preempted) == (5, 5.0)
    # A run that checkpointed on request loses nothing; one still running changes nothing.
    clean = dataclasses.replace(preempted, progress_step=40)
    assert "work lost: 0 steps, 0.0s" in runs.on_run_report(clean, "tx-1", RunReport("j1-r1", RunState.SUCCEEDED), NOW).events[0].reason
    assert not runs.on_run_report(preempted, "tx-1", RunReport("j1-r1", RunState.RUNNING), NOW)


def test_progress_readings_are_kept_on_the_job_without_an_event():
    reading = RunReport("j1-r1", RunState.RUNNING, progress=RunProgress(12, NOW + 1, 10, NOW))
    seen = runs.observe(job(), reading)
    assert (seen.progress_step, seen.checkpoint_step, seen.checkpoint_at) == (12, 10, NOW)
    older = RunReport("j1-r1", RunState.RUNNING, progress=RunProgress(13, NOW + 2, 0, 0.0))
    assert runs.observe(seen, older).checkpoint_step == 10  # a checkpoint is never forgotten


def test_a_preempted_job_whose_site_is_lost_is_requeued_without_using_a_retry():
    preempted = job(state=JobState.PREEMPTED, preemptions=1, attempt=4, spec=JobSpec(JobKind.TRAINING, "x", max_retries=0))
    decision = runs.release_site("tx-1", [preempted], 30, NOW)
    assert decision.jobs[-1].state == JobState.PENDING


def test_a_stop_that_overruns_the_grace_is_ordered_again_without_grace():
    preempted = job(state=JobState.PREEMPTED, updated_at=NOW)
    assert not runs.overdue_preemptions([preempted], NOW + 30 + 29).orders
    [again] = runs.overdue_preemptions([preempted], NOW + 30 + 31).orders
    assert again.run_id == "j1-r1" and again.checkpoint_grace_s == 0


def test_checkpoint_files_round_trip_and_only_the_latest_two_are_kept(tmp_path):
    uri = str(tmp_path / "ckpt")
    run = RunCheckpoints(uri, preempt_uri=preempt_file(uri, "j1-r1"))
    assert read_state(uri).checkpoint_step == 0 and not run.preempt_requested()
    for step in (10, 20, 30):
        (tmp_path / "ckpt" / f"step-{step:012d}").mkdir(parents=True)
        run.path_for(step)
        run.commit(step)
    run.progress(33, force=True)
    state = read_state(uri)
    assert (state.step, state.checkpoint_step) == (33, 30) and state.checkpoint_path.endswith("step-000000000030")
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step-*")) == ["step-000000000020", "step-000000000030"]
    (tmp_path / "ckpt" / "latest.json").write_text("{not json")
    assert read_state(uri).checkpoint_step == 0  # unreadable reads as none, never as a crash


def test_the_agent_asks_first_and_stops_only_a_run_that_overstays(tmp_path):
    uri = str(tmp_path / "ckpt")
    agent = AgentCheckpoints()
    agent.remember("j1-r1", uri)
    clock = FakeClock(0.0)
    stops = []

    # The run sees the request and exits: no stop needed.
    exits = iter([True, True, False])
    found, how = agent.stop_gracefully("j1-r1", 10, "cut", lambda: next(exits), lambda: stops.append(1) or True, clock=clock, sleep=clock.sleep)
    assert how == "exited after checkpointing" and not stops
    assert json.loads((tmp_path / "ckpt" / "preempt-j1-r1").read_text())["reason"] == "cut"
    assert RunCheckpoints(uri, preempt_uri=preempt_file(uri, "j1-r1")).preempt_requested()
    # A run that ignores it is stopped once its grace is over.
    found, how = agent.stop_gracefully("j1-r1", 2, "cut", lambda: True, lambda: stops.append(1) or True, clock=clock, sleep=clock.sleep)
    assert how == "stopped" and stops == [1] and clock.now >= 2


def test_a_stale_run_can_never_overwrite_or_delete_a_newer_runs_checkpoint(tmp_path, monkeypatch):
    uri = str(tmp_path / "ckpt")
    monkeypatch.setenv("POWERPLANE_CHECKPOINT_DIR", uri)
    monkeypatch.setenv("POWERPLANE_RUN_ID", "j1-r1")
    stale = RunCheckpoints.from_env()
    assert stale.attempt == 1
    stale.path_for(40)
    stale.commit(40)
    newer = RunCheckpoints(uri, resume_from=read_state(uri).checkpoint_path, resume_step=40, attempt=2)
    newer.path_for(50)
    newer.commit(50)
    assert not (tmp_path / "ckpt" / "step-000000000040-r1").exists()  # the newer run no longer needs it
    # Run 1 goes on (its site was lost, nobody could stop it) and checkpoints a later step.
    for step in (60, 70, 80):
        stale.path_for(step)
        stale.commit(step)
        stale.progress(step + 5, force=True)
    state = read_state(uri)
    assert (state.checkpoint_step, state.step) == (50, 50) and state.checkpoint_path.endswith("step-000000000050-r2")
    assert (tmp_path / "ckpt" / "step-000000000050-r2").is_dir()
    assert json.loads((tmp_path / "ckpt" / "latest-r2.json").read_text())["step"] == 50
