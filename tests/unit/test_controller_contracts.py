"""Contracts through the real controller on a real SQLite store: a tenant borrowing half of a
full site gives it back when another tenant's firm claim arrives. The borrowed run (never
the borrower's firm one) is stopped with its checkpoint grace under the cause "contract",
the claim keeps the room while it checkpoints and starts once the agent reports it gone;
the requeued run waits, its reason saying where its tenant stands. The policy is the
controller's `tenancy`, built from the config's `contracts:` and `fair_share:`."""

from __future__ import annotations

import asyncio

from scheduler.core.decisions import StartRun, StopRun
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore
from tests.builders import FakeClock
from tests.unit.agent_script import drain

NODE = GpuNode(node_id="n1", gpu_model="H100", gpus=16, cpus=64, memory_bytes=0)


def test_a_firm_claim_reclaims_a_borrowed_run_through_the_controller(tmp_path):
    config = SchedulerConfig(
        regions=["us"], sites={"us-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, heartbeat_interval_s=5,
        contracts=[{"tenant": "acme", "region": "us", "firm_gpus": 8}, {"tenant": "beta", "region": "us", "firm_gpus": 8}],
        fair_share={"reclaim_grace_s": 600},
    )
    clock = FakeClock(1_000_000.0)

    async def scenario():
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config, clock=clock)
        seen: list[list[str]] = []
        controller.decided = lambda decision: seen.append(list(decision.preemptions))
        await controller.start(loops=False)
        try:
            assert controller.tenancy.contract("acme", "us").firm_gpus == 8
            session = await controller.attach("us-1", "us", (NODE,), [])
            spec = JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=8), checkpoint_grace_s=45)
            firm, _ = await controller.submit("beta", "b1", spec)
            borrowed, _ = await controller.submit("beta", "b2", spec)
            await controller.schedule_once()
            starts = {o.job_id: o.run_id for o in drain(session) if isinstance(o, StartRun)}
            assert set(starts) == {firm.job_id, borrowed.job_id}
            await controller.on_run_reports("us-1", [RunReport(starts[firm.job_id], RunState.RUNNING)])
            clock.advance(60)
            await controller.on_run_reports("us-1", [RunReport(starts[borrowed.job_id], RunState.RUNNING)])

            clock.advance(600)
            claim, _ = await controller.submit("acme", "a1", spec)
            await controller.schedule_once()
            victim = controller.jobs[borrowed.job_id]
            assert victim.state == JobState.PREEMPTED and victim.preempted_for == claim.job_id
            assert f"reclaimed by tenant acme's contract for job {claim.job_id}" in victim.reason
            assert controller.jobs[firm.job_id].state == JobState.RUNNING
            [stop] = drain(session)
            assert isinstance(stop, StopRun) and stop.run_id == starts[borrowed.job_id] and stop.checkpoint_grace_s == 45
            assert ["contract"] in seen
            assert "reclaiming 1 borrowed run for tenant acme's contract (grace 45 s)" in controller.jobs[claim.job_id].pending_reason

            clock.advance(30)
            await controller.on_run_reports("us-1", [RunReport(starts[borrowed.job_id], RunState.STOPPED)])
            await controller.schedule_once()
            assert (controller.jobs[claim.job_id].state, controller.jobs[claim.job_id].site_id) == (JobState.SCHEDULED, "us-1")
            requeued = controller.jobs[borrowed.job_id]
            assert requeued.state == JobState.PENDING
            assert requeued.pending_reason.startswith("tenant beta is at its 8-GPU contract in us (8 in use)")
        finally:
            await controller.stop()

    asyncio.run(scenario())
