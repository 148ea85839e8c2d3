"""A site's inventory follows its cluster: a site that registered before Ray listed its
GPUs (0 GPUs) gets them with the agent's NodesChanged, and placement uses them at once;
nodes that leave take their GPUs out of placement the same way. A real controller on a
real SQLite store; the scheduling pass is run by hand."""

from __future__ import annotations

import asyncio

from scheduler.core.decisions import StartRun
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore

NODE = GpuNode(node_id="n1", gpu_model="H100", gpus=8, cpus=64, memory_bytes=0)


def test_gpus_that_appear_after_registration_are_placed_on_at_once(tmp_path):
    config = SchedulerConfig(regions=["us"], sites={"us-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, heartbeat_interval_s=5)

    async def scenario():
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config)
        await controller.start()
        try:
            session = await controller.attach("us-1", "us", (), [])  # registered before its GPU node joined
            job, _ = await controller.submit("acme", "r1", JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=4)))
            await controller.schedule_once()
            assert controller.jobs[job.job_id].state == JobState.PENDING
            assert controller.jobs[job.job_id].pending_reason == "no site in any region has 4 GPUs in all (largest has 0)"

            await controller.on_nodes_changed("us-1", (NODE,))
            assert controller.site("us-1").gpus_total == 8
            await controller.schedule_once()
            placed = controller.jobs[job.job_id]
            assert (placed.state, placed.site_id) == (JobState.SCHEDULED, "us-1")
            order = await asyncio.wait_for(session.outbox.get(), 10)
            assert isinstance(order, StartRun) and order.run_id == placed.run_id

            await controller.on_nodes_changed("us-1", ())  # the node died
            assert controller.site("us-1").gpus_total == 0
            big, _ = await controller.submit("acme", "r2", JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=2)))
            await controller.schedule_once()
            assert controller.jobs[big.job_id].state == JobState.PENDING
            # Durable: a restarted scheduler loads the site with the inventory it had last.
            assert [s.inventory for s in controller.committer.store.load().sites] == [()]
        finally:
            await controller.stop()

    asyncio.run(scenario())
