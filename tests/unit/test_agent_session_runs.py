"""The agent's side of the run fence, without Ray or gRPC: a fake runner whose
submissions can be held in flight, the session's loops run as tasks, and what the
agent would send to the scheduler read from its outbox.

- A run whose submission is in flight is neither polled nor reported: Ray does not
  know it yet, and "no such job" would tell the scheduler the run was lost (the
  cause of a job started twice, CI on a fresh clone).
- A stop for a run being submitted waits for the submission and stops what Ray has.
- Runs of one job never overlap: an older attempt's start is refused, a newer one
  waits until the older run is gone.
- Inventory follows the cluster: a node that joins late is sent as NodesChanged.
"""

from __future__ import annotations

import asyncio
import threading

from agents.run_records import RunStart
from agents.session import AgentSettings, SiteAgent
from scheduler.api.v1 import agent_pb2
from scheduler.core.decisions import StopRun
from scheduler.core.jobs import JobKind, JobSpec, Resources
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode
from tests.unit.fake_scheduler import DROP, serve_fake_scheduler


class SlowRunner:
    """RayRunner's methods; submissions block until `release` is set; Ray knows a run
    only once its submission returned."""

    def __init__(self):
        self.release = threading.Event()
        self.on_ray: dict[str, int] = {}  # run id -> state
        self.submitted: list[str] = []
        self.stopped: list[str] = []
        self.gpus = 0

    def inventory(self):
        return [GpuNode("n1", "virtual", self.gpus, cpus=8)]

    def list_runs(self):
        return []

    def submit(self, start):
        assert self.release.wait(10), "test never released the submission"
        self.submitted.append(start.run_id)
        self.on_ray[start.run_id] = RunState.RUNNING

    def stop(self, run_id):
        self.stopped.append(run_id)
        if run_id not in self.on_ray:
            return False
        self.on_ray[run_id] = RunState.STOPPED
        return True

    def status(self, run_id):
        if run_id not in self.on_ray:
            return RunReport(run_id, RunState.UNKNOWN, "Ray has no such job")
        return RunReport(run_id, self.on_ray[run_id])


def start(run_id: str) -> RunStart:
    job_id = run_id.rsplit("-r", 1)[0]
    return RunStart(run_id, job_id, "acme", JobSpec(JobKind.TRAINING, "python -c pass", Resources(gpus=1)))


def stop(run_id: str, reason: str) -> StopRun:
    return StopRun("us-1", run_id, reason)


async def until(check, what: str, timeout_s: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Harness:
    def __init__(self):
        self.runner = SlowRunner()
        settings = AgentSettings("us-1", "us", "127.0.0.1:1", "t", poll_starting_s=0.01, poll_running_s=0.01, inventory_period_s=0.01)
        self.agent = SiteAgent(settings, self.runner)
        self.agent._outbox = asyncio.Queue()
        self.polls = 0
        refresh = self.agent._refresh_progress

        async def counted():
            self.polls += 1
            await refresh()

        self.agent._refresh_progress = counted
        self.sent: list[agent_pb2.AgentMessage] = []

    def reports(self) -> list[tuple[str, str]]:
        while not self.agent._outbox.empty():
            self.sent.append(self.agent._outbox.get_nowait())
        return [(m.run_event.run_id, agent_pb2.RunState.Name(m.run_event.state)) for m in self.sent if m.WhichOneof("body") == "run_event"]


def run(test):
    asyncio.run(asyncio.wait_for(test(Harness()), 30))


def test_a_run_in_submission_is_not_reported_lost_and_is_reported_starting_once_on_ray():
    async def scenario(h: Harness):
        poll = asyncio.create_task(h.agent._poll_loop())
        starting = asyncio.create_task(h.agent._start(start("job-a-r1")))
        await until(lambda: h.polls >= 5, "five poll passes while the submission is in flight")
        assert h.reports() == [] and "job-a-r1" not in h.agent.tracked
        h.runner.release.set()
        await starting  # no KeyError: the run is tracked once Ray has it
        await until(lambda: h.polls >= 10, "more poll passes")
        assert h.reports() == [("job-a-r1", "RUN_STATE_STARTING"), ("job-a-r1", "RUN_STATE_RUNNING")]
        poll.cancel()

    run(scenario)


def test_a_stop_during_the_submission_stops_what_ray_then_has():
    async def scenario(h: Harness):
        starting = asyncio.create_task(h.agent._start(start("job-a-r1")))
        await until(lambda: "job-a-r1" in h.agent.submitting, "the submission in flight")
        stopping = asyncio.create_task(h.agent._stop_run(stop("job-a-r1", "cancelled")))
        await asyncio.sleep(0.05)
        assert h.runner.stopped == []  # not "no such job" while the submission may still land
        h.runner.release.set()
        await asyncio.gather(starting, stopping)
        assert h.runner.stopped == ["job-a-r1"] and h.runner.on_ray["job-a-r1"] == RunState.STOPPED

    run(scenario)


def test_an_older_attempt_is_refused_and_a_newer_one_waits_for_the_older_run_to_end():
    async def scenario(h: Harness):
        h.runner.release.set()
        h.runner.on_ray["job-a-r2"] = RunState.RUNNING
        h.agent.tracked["job-a-r2"] = RunReport("job-a-r2", RunState.RUNNING)
        poll = asyncio.create_task(h.agent._poll_loop())
        await h.agent._start(start("job-a-r1"))
        assert ("job-a-r1", "RUN_STATE_UNKNOWN") in h.reports() and h.runner.submitted == []
        newer = asyncio.create_task(h.agent._start(start("job-a-r3")))
        await until(lambda: h.polls >= 5, "poll passes while run 3 waits")
        assert h.runner.submitted == [] and "job-a-r3" in h.agent.waiting
        h.runner.on_ray["job-a-r2"] = RunState.STOPPED  # the scheduler had it stopped
        await newer
        assert h.runner.submitted == ["job-a-r3"] and "job-a-r2" not in h.agent.tracked
        poll.cancel()

    run(scenario)


def test_a_start_held_by_the_fence_can_be_stopped_before_it_starts():
    async def scenario(h: Harness):
        h.runner.release.set()
        h.agent.tracked["job-a-r1"] = RunReport("job-a-r1", RunState.RUNNING)
        h.runner.on_ray["job-a-r1"] = RunState.RUNNING
        held = asyncio.create_task(h.agent._start(start("job-a-r2")))
        await until(lambda: "job-a-r2" in h.agent.waiting, "run 2 held")
        await h.agent._stop_run(stop("job-a-r2", "preempted"))
        await held
        assert h.runner.submitted == [] and ("job-a-r2", "RUN_STATE_UNKNOWN") in h.reports()

    run(scenario)


def test_gpus_that_appear_after_registration_are_sent_as_nodes_changed():
    async def scenario(h: Harness):
        await h.agent._register_message()  # registered with 0 GPUs: the GPU node had not joined
        inventory = asyncio.create_task(h.agent._inventory_loop())
        h.runner.gpus = 8
        await until(lambda: any(m.WhichOneof("body") == "nodes_changed" for m in (h.reports(), h.sent)[1]), "NodesChanged")
        [changed] = [m.nodes_changed for m in h.sent if m.WhichOneof("body") == "nodes_changed"]
        assert [n.gpus for n in changed.gpu_nodes] == [8] and h.agent.power.gpus.total_gpus == 8
        await asyncio.sleep(0.05)
        h.reports()
        assert sum(m.WhichOneof("body") == "nodes_changed" for m in h.sent) == 1  # only changes are sent
        inventory.cancel()

    run(scenario)


def test_reconnects_start_from_the_shortest_delay_after_a_session_that_registered():
    """Backoff grows while the scheduler refuses, but a session that registered resets it:
    an agent must not wait its longest delay after a scheduler restart (its site would be
    declared lost and its runs started again elsewhere)."""

    async def scenario():
        scheduler, server, port = await serve_fake_scheduler()
        settings = AgentSettings("us-1", "us", f"127.0.0.1:{port}", "t" * 32, backoff_initial_s=0.01, backoff_max_s=0.08)
        agent = SiteAgent(settings, SlowRunner())
        delays: list[float] = []
        pause = agent._pause

        async def recorded(delay_s: float) -> None:
            delays.append(delay_s)
            await pause(delay_s)

        agent._pause = recorded
        scheduler.refuse = True
        running = asyncio.create_task(agent._sessions())
        try:
            await until(lambda: len(delays) >= 6, "six refused attempts")
            assert max(delays) > 0.04 and all(d <= 0.08 for d in delays)  # grown, never above the cap
            scheduler.refuse = False
            await until(lambda: agent.connected.is_set(), "registered")
            refused = len(delays)
            scheduler.orders.put_nowait(DROP)
            await until(lambda: len(delays) > refused, "the reconnect after the drop")
            assert delays[refused] <= 0.01
        finally:
            agent.stop()
            await asyncio.wait_for(running, 10)
            await server.stop(None)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_orders_are_converted_once_and_a_start_whose_spec_is_not_one_is_reported_failed():
    async def scenario(h: Harness):
        h.runner.release.set()
        h.agent._follow(agent_pb2.SchedulerMessage(start_run=agent_pb2.StartRun(run_id="job-b-r1", job_id="job-b", spec={"entrypoint": "x"})))
        assert h.reports() == [("job-b-r1", "RUN_STATE_FAILED")] and h.runner.submitted == []
        spec = {"kind": JobKind.TRAINING, "entrypoint": "python -c pass", "resources": {"gpus": 1}}
        h.agent._follow(agent_pb2.SchedulerMessage(start_run=agent_pb2.StartRun(run_id="job-a-r1", job_id="job-a", spec=spec)))
        await until(lambda: "job-a-r1" in h.agent.tracked, "the start, converted, submitted")
        assert h.runner.submitted == ["job-a-r1"] and h.agent.power.gpus.run_gpus.get("job-a-r1") == 1

    run(scenario)
