"""An order leaves for its site only once the decision behind it is durable: the
controller commits first and sends after (else a crash between the two leaves a run
going that the store never heard of). A real controller on a real SQLite store whose
commits of the decision under test wait for the test to let them through; the agent
session's sends are logged next to the store's returned commits."""

from __future__ import annotations

import asyncio
import threading

from scheduler.core.decisions import StartRun, StopRun
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore

NOW = 1_800_000_000.0


class GatedStore:
    """SqliteStore whose commits holding a job in `gate_state` wait for `release`; `log`
    records each commit as it returns, as ("durable", {(job_id, state)})."""

    def __init__(self, path, log: list):
        self.inner = SqliteStore(path)
        self.log = log
        self.gate_state: JobState | None = None
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def gate(self, state: JobState) -> None:
        self.gate_state = state
        self.entered.clear()
        self.release.clear()

    def commit(self, jobs, events, sites, grid_events=()):
        if self.gate_state is not None and any(j.state == self.gate_state for j in jobs):
            self.entered.set()
            self.release.wait()
        ids = self.inner.commit(jobs, events, sites, grid_events)
        self.log.append(("durable", {(j.job_id, j.state) for j in jobs}))
        return ids


def config() -> SchedulerConfig:
    # Loops far apart; submissions and cancels kick the scheduling pass.
    return SchedulerConfig(regions=["us"], sites={"tx-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, heartbeat_interval_s=5)


def test_orders_leave_only_after_their_decision_is_committed(tmp_path):
    log: list = []
    store = GatedStore(tmp_path / "pp.db", log)

    async def order_out(session, kind):
        """The next order of `kind` the session's stream would write."""
        while not isinstance(order := await asyncio.wait_for(session.outbox.get(), 60), kind):
            pass
        return order

    async def held_then_sent(session, state: JobState, kind, act):
        """Run `act` with any commit of a job in `state` held: nothing of `kind` is sent
        while it is held; once it returned, the order goes out. Returns act's result and the order."""
        loop = asyncio.get_running_loop()
        store.gate(state)
        task = asyncio.ensure_future(act())
        try:
            await loop.run_in_executor(None, store.entered.wait)  # the decision's commit is in flight
            for _ in range(50):
                await asyncio.sleep(0)  # every task that could send has had its turn
            assert not [o for o in list(session.outbox._queue) if isinstance(o, kind)], f"{kind.__name__} left before its commit"
            assert not [e for e in log if e[0] == "sent" and isinstance(e[1], kind)]
        finally:
            store.release.set()
        return await task, await order_out(session, kind)

    async def run():
        controller = Controller(store, config(), lambda: NOW)
        await controller.start()
        try:
            session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [])
            send = session.send
            session.send = lambda order: (log.append(("sent", order)), send(order))
            spec = JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=4), allowed_regions=("us",))
            # The submission kicks a scheduling pass; its decision (SCHEDULED, StartRun) is held.
            (job, _), start = await held_then_sent(session, JobState.SCHEDULED, StartRun, lambda: controller.submit("acme", "req-1", spec))
            _, stop = await held_then_sent(session, JobState.CANCELLING, StopRun, lambda: controller.cancel("acme", job.job_id, "not needed"))
            return job, start, stop
        finally:
            store.release.set()
            await controller.stop()

    job, start, stop = asyncio.run(run())
    assert start.run_id == stop.run_id == f"{job.job_id}-r1"

    def first(entry) -> int:
        return next(i for i, e in enumerate(log) if entry(e))

    for state, order in ((JobState.SCHEDULED, start), (JobState.CANCELLING, stop)):
        durable = first(lambda e, state=state: e[0] == "durable" and (job.job_id, state) in e[1])
        sent = first(lambda e, order=order: e[0] == "sent" and e[1] is order)
        assert durable < sent, f"{type(order).__name__} was sent before the {state.name} decision was committed"
