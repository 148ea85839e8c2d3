"""Serve scaling (scheduler/core/serve_scaling.py, a part of the power state machine) through the controller, with a real
controller and SQLite store, driven as the agent service drives it (no network): on a
power-managed site a scale-up waits until the agent confirms mining made room, then
the new size is committed and ScaleRun goes out; a scale-down goes out at once, and
the replicas given up count as drawing until the agent reports them gone; a site
without power management scales on free GPUs alone."""

from __future__ import annotations

import asyncio

from scheduler.core.decisions import ScaleRun, StartRun
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunReport, RunState, ServeLoad
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore
from tests.builders import FakeClock, a_site_power
from tests.unit.agent_script import confirm, drain, start_when_room

COOLDOWN_S = 10.0
POWER = a_site_power("tx-1").cap_mw(7).with_miners("S21", 2000).with_gpus(8).build()


def config() -> SchedulerConfig:
    # Loops far apart: the test drives every pass itself.
    return SchedulerConfig(
        regions=["us"],
        sites={"tx-1": "s" * 16, "lab": "l" * 16},
        schedule_interval_s=3600,
        power_interval_s=3600,
        site_timeout_s=7200,
        heartbeat_interval_s=5,
        serve_cooldown_s=COOLDOWN_S,
    )


def service(gpus=2, low=1, high=3) -> JobSpec:
    return JobSpec(
        JobKind.INFERENCE,
        "serve app",
        Resources(gpus=gpus),
        allowed_regions=("us",),
        serve_import_path="examples.inference.service:app",
        min_replicas=low,
        max_replicas=high,
        target_rps_per_replica=10.0,
    )


async def report(controller, site_id, run_id, rps, replicas):
    await controller.on_run_reports(site_id, [RunReport(run_id, RunState.RUNNING, serve=ServeLoad(rps, replicas, "http://127.0.0.1:8000/x"))])


def run(tmp_path, body):
    clock = FakeClock()

    async def main():
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config(), clock)
        await controller.start()
        try:
            await body(controller, clock)
        finally:
            await controller.stop()

    asyncio.run(main())


async def running_service(controller, session, site_id, spec):
    job, _ = await controller.submit("acme", f"svc-{site_id}", spec)
    await controller.schedule_once()
    if controller.power.manages(site_id):
        await start_when_room(controller, session, site_id)
    else:
        assert any(isinstance(o, StartRun) for o in drain(session))
    run_id = controller.jobs[job.job_id].run_id
    await report(controller, site_id, run_id, 0.0, 1)
    assert controller.jobs[job.job_id].state == JobState.RUNNING
    return job.job_id, run_id


def gpus_claimed(controller, job_id) -> tuple[int, int]:
    """(GPUs the job's running claim has, GPUs counted as stopping for it) in tx-1's dispatch inputs."""
    inputs = controller.power.inputs("tx-1", controller.power.sites["tx-1"], controller.jobs, controller.clock())[0]
    running = sum(c.gpus for c in inputs.running if c.job_id == job_id)
    stopping = sum(c.gpus for c in inputs.stopping if c.job_id.startswith(job_id))
    return running, stopping


def test_on_a_power_managed_site_a_scale_up_waits_for_mining_and_a_scale_down_counts_until_confirmed(tmp_path):
    async def body(controller, clock):
        session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], POWER)
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))  # mining fills the cap
        job_id, run_id = await running_service(controller, session, "tx-1", service())

        await report(controller, "tx-1", run_id, 25.0, 1)  # 25 req/s at 10 each: 3 replicas
        assert not (await controller.scale_services()) and not drain(session)  # nothing before power
        await controller.dispatch_power(sweep=True)
        making_room = drain(session)
        assert not any(isinstance(o, ScaleRun) for o in making_room)  # mining first
        assert controller.jobs[job_id].replicas in (0, 1)
        await confirm(controller, making_room)
        await controller.dispatch_power(sweep=True)
        scaled = [o for o in drain(session) if isinstance(o, ScaleRun)]
        assert [(o.run_id, o.replicas) for o in scaled] == [(run_id, 3)] and "25.0 req/s" in scaled[0].cause
        assert controller.jobs[job_id].replicas == 3 and gpus_claimed(controller, job_id) == (6, 0)
        await report(controller, "tx-1", run_id, 24.0, 3)

        # Demand drops: nothing until it stayed low for the cool-down, then down at once.
        clock.now += 1
        await report(controller, "tx-1", run_id, 4.0, 3)
        await controller.scale_services()
        assert not any(isinstance(o, ScaleRun) for o in drain(session))
        clock.now += COOLDOWN_S
        await controller.scale_services()
        down = [o for o in drain(session) if isinstance(o, ScaleRun)]
        assert [(o.run_id, o.replicas) for o in down] == [(run_id, 1)]
        assert controller.jobs[job_id].replicas == 1
        assert gpus_claimed(controller, job_id) == (2, 4)  # the two replicas it gives up still draw
        await report(controller, "tx-1", run_id, 4.0, 3)  # not gone yet
        assert gpus_claimed(controller, job_id) == (2, 4)
        await report(controller, "tx-1", run_id, 4.0, 1)
        assert gpus_claimed(controller, job_id) == (2, 0)
        reloaded = SqliteStore(tmp_path / "pp.db").load()
        assert next(j for j in reloaded.jobs if j.job_id == job_id).replicas == 1  # the size is committed

    run(tmp_path, body)


def test_without_power_management_a_service_scales_on_free_gpus(tmp_path):
    async def body(controller, clock):
        session = await controller.attach("lab", "us", (GpuNode("n1", "H100", 6),), [])
        job_id, run_id = await running_service(controller, session, "lab", service(gpus=2, high=5))
        await report(controller, "lab", run_id, 45.0, 1)  # wants 5 replicas (10 GPUs); 6 GPUs: 3 replicas
        await controller.scale_services()
        assert [(o.run_id, o.replicas) for o in drain(session) if isinstance(o, ScaleRun)] == [(run_id, 3)]
        assert controller.site_usage()["lab"] == (6, 1)  # placement sees its GPUs taken
        await report(controller, "lab", run_id, 45.0, 3)
        await controller.scale_services()
        assert not drain(session)  # no free GPU: stays

    run(tmp_path, body)
