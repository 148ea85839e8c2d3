"""The power state machine driven through the scheduler shell: a real controller and a real SQLite store,
driven the way the agent service drives it (no network): mining targets go out,
a start waits until the agent confirms mining is down, grid events climb the
ladder at once, are idempotent by id, persist, and say how they were met."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from scheduler.core.decisions import CapRunPower, SetMiningTargets, StartRun, StopRun
from scheduler.core.errors import FailedPrecondition, InvalidArgument
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore
from tests.builders import NOW, FakeClock, a_site_power
from tests.unit.agent_script import confirm, drain, start_when_room

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S19XP", 1000, "s19").with_miners("S21", 1000, "s21").with_gpus(8).at_node("HB_WEST").build()
FLEETS = POWER.fleets


def config() -> SchedulerConfig:
    # Loops far apart: the test drives every pass itself.
    return SchedulerConfig(
        regions=["us"], sites={"tx-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, heartbeat_interval_s=5
    )


def training(gpus=8, tolerance=0, priority=0):
    return JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=gpus), priority=priority, allowed_regions=("us",), slowdown_tolerance_pct=tolerance)


async def start_controller(tmp_path, clock, loops: bool = True):
    controller = Controller(SqliteStore(tmp_path / "pp.db"), config(), clock)
    await controller.start(loops=loops)
    session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], POWER)
    return controller, session


def run_with_controller(tmp_path, body, clock=None, loops: bool = True):
    """Run `body(controller, session, clock)` on a started controller; always stop it.
    `loops=False`: no background passes at all (the body drives every one)."""
    clock = clock or FakeClock()

    async def run():
        controller, session = await start_controller(tmp_path, clock, loops)
        try:
            await body(controller, session, clock)
        finally:
            await controller.stop()

    asyncio.run(run())


def test_a_start_waits_for_mining_to_come_down_then_goes_out(tmp_path):
    async def body(controller, session, clock):
        await controller.dispatch_power(sweep=True)
        first = drain(session)
        assert isinstance(first[0], SetMiningTargets) and sum(first[0].targets_w.values()) > 5e6  # mining fills the cap
        await confirm(controller, first)
        job, _ = await controller.submit("acme", "r1", training())
        await controller.schedule_once()
        assert controller.jobs[job.job_id].state == JobState.SCHEDULED
        await controller.dispatch_power(sweep=True)
        making_room = drain(session)
        assert not any(isinstance(o, StartRun) for o in making_room)  # not before mining is down
        lowered = [o for o in making_room if isinstance(o, SetMiningTargets)][-1]
        assert sum(lowered.targets_w.values()) < sum(first[0].targets_w.values())
        await confirm(controller, making_room)
        await controller.dispatch_power(sweep=True)
        starts = [o for o in drain(session) if isinstance(o, StartRun)]
        assert [s.run_id for s in starts] == [f"{job.job_id}-r1"]

    run_with_controller(tmp_path, body)


def test_a_cap_cut_curtails_mining_first_then_caps_then_preempts_training(tmp_path):
    async def body(controller, session, clock):
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        job, _ = await controller.submit("acme", "r1", training(tolerance=25))
        await controller.schedule_once()
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        await controller.dispatch_power(sweep=True)
        drain(session)
        controller.jobs[job.job_id] = dataclasses.replace(controller.jobs[job.job_id], state=JobState.RUNNING)  # as the agent's report would

        floor_w = (POWER.gpus * POWER.gpu_idle_w + POWER.mining_floor_w) * POWER.overhead
        run_w = 8 * (POWER.gpu_load_w - POWER.gpu_idle_w) * POWER.overhead
        # 1. Room for the run at full power: only mining comes down (the cut comes with a little
        # notice: one in force at once also caps training until mining is read down, test_late_cuts.py).
        await controller.post_grid_event(GridEvent("cut-1", GridEventKind.CAP_LIMIT, start=NOW + 1, end=NOW + 600, site_id="tx-1", cap_w=floor_w + run_w + 1000))
        orders = drain(session)
        assert isinstance(orders[0], SetMiningTargets) and not any(isinstance(o, (StopRun, CapRunPower)) for o in orders)
        assert sum(orders[0].targets_w.values()) <= POWER.mining_floor_w + 1000 / POWER.overhead + 1e-6
        assert orders[0].cap_event_active
        await confirm(controller, orders)  # mining read down: nothing left for fast GPU caps to bridge
        # 2. Tighter: training is power-capped within its 25 % tolerance.
        await controller.post_grid_event(GridEvent("cut-2", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 600, site_id="tx-1", cap_w=floor_w + 0.8 * run_w))
        caps = [o for o in drain(session) if isinstance(o, CapRunPower)]
        assert len(caps) == 1 and 0.70 <= caps[0].power_fraction < 1.0
        # 3. Tighter still: it is preempted and requeued.
        await controller.post_grid_event(GridEvent("cut-3", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 600, site_id="tx-1", cap_w=floor_w + 0.2 * run_w))
        stops = [o for o in drain(session) if isinstance(o, StopRun)]
        assert [s.run_id for s in stops] == [f"{job.job_id}-r1"]
        assert stops[0].checkpoint_grace_s == 0  # the cut is in force already: no time to checkpoint
        preempted = controller.jobs[job.job_id]
        assert preempted.state == JobState.PREEMPTED and preempted.preemptions == 1 and "preempted" in preempted.reason
        # It holds its power until the agent reports it gone, then it is requeued.
        await controller.on_run_reports("tx-1", [RunReport(f"{job.job_id}-r1", RunState.STOPPED)])
        requeued = controller.jobs[job.job_id]
        assert requeued.state == JobState.PENDING and requeued.preemptions == 1 and "requeued" in requeued.reason
        responses = {r.event.event_id: r.response for r in controller.power.grid.values()}
        assert any("power-cap training" in line for line in responses["cut-2"])
        assert any("preempt training" in line for line in responses["cut-3"])
        seen.update(responses)

    seen = {}
    run_with_controller(tmp_path, body)

    async def restart():  # grid events and their responses survive a restart
        restarted = Controller(SqliteStore(tmp_path / "pp.db"), config(), FakeClock())
        await restarted.start()
        try:
            return restarted.power.grid["cut-3"].response
        finally:
            await restarted.stop()

    assert asyncio.run(restart()) == seen["cut-3"]


def test_grid_events_are_idempotent_by_id_and_refused_when_wrong(tmp_path):
    async def body(controller, session, clock):
        event = GridEvent("dr-1", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 60, site_id="tx-1", cap_w=5e6)
        first, created = await controller.post_grid_event(event)
        again, created_again = await controller.post_grid_event(event)
        assert created and not created_again and again == first
        with pytest.raises(FailedPrecondition):
            await controller.post_grid_event(dataclasses.replace(event, cap_w=4e6))
        with pytest.raises(InvalidArgument, match="end must be after start; site 'nowhere' is not a site"):
            await controller.post_grid_event(GridEvent("bad", GridEventKind.CAP_LIMIT, start=NOW, end=NOW - 1, site_id="nowhere", cap_w=1e6))

    run_with_controller(tmp_path, body)


def test_an_emergency_sheds_mining_to_its_floor_and_keeps_inference(tmp_path):
    async def body(controller, session, clock):
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        spec = JobSpec(JobKind.INFERENCE, "python serve.py", Resources(gpus=2), allowed_regions=("us",))
        job, _ = await controller.submit("acme", "inf", spec)
        await controller.schedule_once()
        await start_when_room(controller, session)
        await controller.post_grid_event(GridEvent("eea-1", GridEventKind.EMERGENCY, start=NOW, end=NOW + 600, site_id="tx-1", reason="ERCOT EEA2"))
        orders = drain(session)
        assert orders[0].targets_w == {f.fleet_id: f.standby_w for f in FLEETS}
        assert not any(isinstance(o, StopRun) for o in orders)
        assert controller.jobs[job.job_id].state in (JobState.SCHEDULED, JobState.STARTING, JobState.RUNNING)

    run_with_controller(tmp_path, body)


def test_a_cut_announced_ahead_gives_preempted_training_its_checkpoint_grace(tmp_path):
    async def body(controller, session, clock):
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        job, _ = await controller.submit("acme", "r1", training())  # grace: 30 s by default
        await controller.schedule_once()
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        await controller.dispatch_power(sweep=True)
        drain(session)
        await controller.on_run_reports("tx-1", [RunReport(f"{job.job_id}-r1", RunState.RUNNING)])
        floor_w = (POWER.gpus * POWER.gpu_idle_w + POWER.mining_floor_w) * POWER.overhead
        # A cut below the floor plus the run, 60 s ahead: planned for from 60 - lead - 30 s grace.
        lead = controller.power.lead_s("tx-1")
        cut = GridEvent("cut-ahead", GridEventKind.CAP_LIMIT, start=NOW + 60, end=NOW + 600, site_id="tx-1", cap_w=floor_w + 1000)
        await controller.post_grid_event(cut)
        assert not [o for o in drain(session) if isinstance(o, StopRun)]  # too early to act
        clock.now = NOW + 60 - lead - 30 + 1  # inside the planning window
        await controller.dispatch_power(sweep=True)
        stops = [o for o in drain(session) if isinstance(o, StopRun)]
        assert [s.run_id for s in stops] == [f"{job.job_id}-r1"]
        # The run may take until the cut's deadline less the site's lead: 30 s less the second we waited, at most.
        expected = int(60 - (clock.now - NOW) - lead)
        assert 0 < stops[0].checkpoint_grace_s <= 30 and stops[0].checkpoint_grace_s == min(30, expected)
        assert controller.jobs[job.job_id].state == JobState.PREEMPTED
        # While it checkpoints it still counts against the cap: nothing else is placed in its power.
        assert controller.power.capacity("tx-1", controller.jobs, controller.clock())[0] < controller.power.capacity("tx-1", controller.jobs, controller.clock())[1] * 8

    run_with_controller(tmp_path, body)


class HeldStore(SqliteStore):
    """A store whose commits wait while `held` is set: the disk is slow."""

    def __init__(self, path):
        super().__init__(path)
        self.held = threading.Event()
        self.released = threading.Event()

    def commit(self, *args, **kwargs):
        if self.held.is_set():
            self.released.wait(10)
        return super().commit(*args, **kwargs)


def test_mining_targets_leave_before_the_commit_and_a_preemption_after_it(tmp_path):
    async def main():
        store = HeldStore(tmp_path / "pp.db")
        controller = Controller(store, config(), FakeClock())
        await controller.start(loops=False)
        try:
            session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], POWER)
            await controller.dispatch_power(sweep=True)
            await confirm(controller, drain(session))
            job, _ = await controller.submit("acme", "r1", training())
            await controller.schedule_once()
            await start_when_room(controller, session)
            await controller.on_run_reports("tx-1", [RunReport(f"{job.job_id}-r1", RunState.RUNNING)])
            drain(session)
            store.held.set()  # from here the disk is slow
            floor_w = (POWER.gpus * POWER.gpu_idle_w + POWER.mining_floor_w) * POWER.overhead
            cut = GridEvent("cut-now", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 600, site_id="tx-1", cap_w=floor_w + 1000)
            posting = asyncio.create_task(controller.post_grid_event(cut))
            while session.outbox.empty():  # the targets arrive while the commit is held
                await asyncio.sleep(0.01)
            before_commit = drain(session)
            assert [type(o) for o in before_commit] == [SetMiningTargets] and before_commit[0].cap_event_active
            assert controller.jobs[job.job_id].state == JobState.PREEMPTED  # decided, in memory: not durable yet
            store.released.set()
            await posting
            assert [o.run_id for o in drain(session) if isinstance(o, StopRun)] == [f"{job.job_id}-r1"]  # the stop, once committed
        finally:
            store.released.set()
            await controller.stop()

    asyncio.run(main())
