"""Preemption for priority through the real controller on a real SQLite store: a
high-priority job submitted to a full site stops a lower-priority training run with its
checkpoint grace, waits while it checkpoints (nothing else takes the room), and starts
once the agent reports the run gone; the victim is requeued to resume from its
checkpoint and the preemption is counted under the cause "priority"."""

from __future__ import annotations

import asyncio

from scheduler.core.decisions import StartRun, StopRun
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunProgress, RunReport, RunState
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore
from tests.builders import FakeClock
from tests.unit.agent_script import drain

NODE = GpuNode(node_id="n1", gpu_model="H100", gpus=8, cpus=64, memory_bytes=0)


def test_a_high_priority_job_preempts_a_lower_priority_training_run_with_grace_and_starts_once_it_is_gone(tmp_path):
    config = SchedulerConfig(
        regions=["us"], sites={"us-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, heartbeat_interval_s=5,
        preemption={"min_run_s": 600, "priority_gap": 1},
    )
    clock = FakeClock(1_000_000.0)

    async def scenario():
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config, clock=clock)
        seen: list[list[str]] = []
        controller.decided = lambda decision: seen.append(list(decision.preemptions))
        await controller.start(loops=False)
        try:
            session = await controller.attach("us-1", "us", (NODE,), [])
            train_spec = JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=8), priority=0, checkpoint_grace_s=45)
            train, _ = await controller.submit("acme", "train", train_spec)
            await controller.schedule_once()
            [start] = [o for o in drain(session) if isinstance(o, StartRun)]
            await controller.on_run_reports("us-1", [RunReport(start.run_id, RunState.RUNNING)])

            urgent_spec = JobSpec(JobKind.INFERENCE, "python serve.py", Resources(gpus=4), priority=10)
            clock.advance(300)  # inside min_run_s: the run is protected
            urgent, _ = await controller.submit("acme", "urgent", urgent_spec)
            await controller.schedule_once()
            assert controller.jobs[train.job_id].state == JobState.RUNNING
            assert "cannot be preempted yet (min run time 600 s; within 300 s)" in controller.jobs[urgent.job_id].pending_reason

            clock.advance(300)
            progress = RunProgress(step=120, step_at=clock(), checkpoint_step=100, checkpoint_at=clock() - 60)
            await controller.on_run_reports("us-1", [RunReport(start.run_id, RunState.RUNNING, progress=progress)])
            await controller.schedule_once()
            victim = controller.jobs[train.job_id]
            assert victim.state == JobState.PREEMPTED and victim.preempted_for == urgent.job_id
            assert f"preempted for higher-priority job {urgent.job_id}" in victim.reason
            [stop] = drain(session)
            assert isinstance(stop, StopRun) and stop.run_id == start.run_id and stop.checkpoint_grace_s == 45
            assert ["priority"] in seen
            waiting = controller.jobs[urgent.job_id]
            assert waiting.state == JobState.PENDING and "preempting 1 lower-priority run (grace 45 s)" in waiting.pending_reason

            # Another lower-priority job arrives while the victim checkpoints: nothing is placed, nothing more stopped.
            other, _ = await controller.submit("acme", "other", JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=4), priority=1))
            clock.advance(10)
            await controller.schedule_once()
            assert drain(session) == [] and controller.jobs[other.job_id].state == JobState.PENDING

            clock.advance(20)  # checkpointed and exited
            await controller.on_run_reports("us-1", [RunReport(start.run_id, RunState.STOPPED)])
            requeued = controller.jobs[train.job_id]
            assert requeued.state == JobState.PENDING and requeued.preempted_for == "" and requeued.checkpoint_step == 100
            await controller.schedule_once()
            placed = controller.jobs[urgent.job_id]
            assert (placed.state, placed.site_id) == (JobState.SCHEDULED, "us-1")
            assert [o.job_id for o in drain(session) if isinstance(o, StartRun)] == [urgent.job_id, other.job_id]
            assert controller.jobs[train.job_id].state == JobState.PENDING  # waits for the service to finish (no preempting back)
        finally:
            await controller.stop()

    asyncio.run(scenario())
