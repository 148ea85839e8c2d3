"""Job logs (GetJobLogs), without Ray.

- `tail`: the last lines, then a byte budget cut at a line boundary (inside a line only
  when the last line alone is over it, at a character boundary); `truncated` says so.
- The agent answers FetchRunLogs from its runner's logs on threads of its own: heartbeats
  go on while Ray is slow; an unknown run or a failing Ray is an error answer, not a crash.
- The scheduler's requests (scheduler/server/log_requests.py): answers matched by request
  id and stream, a bounded wait, UNAVAILABLE when the agent is away, goes away or is
  silent, FAILED_PRECONDITION for a job that never ran.
- Through real gRPC, with a real SiteAgent on a fake runner: the owner reads its job's
  logs, another tenant gets NOT_FOUND, a viewer may call it, operators (read-only ones
  too) read any job's, and a silent agent is UNAVAILABLE within the caller's deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from types import SimpleNamespace

import grpc
import pytest

from agents.session import AgentSettings, SiteAgent
from scheduler.api.v1 import agent_pb2, logs_pb2, operator_pb2_grpc, tenant_pb2, tenant_pb2_grpc, types_pb2
from scheduler.client import spec
from scheduler.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from scheduler.core.jobs import JobState
from scheduler.core.run_logs import FetchRunLogs, RunLogs, tail
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode
from scheduler.server.app import SchedulerServer
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import AgentSession
from scheduler.server.log_requests import LogRequests
from tests.builders import a_job

LOG = "".join(f"line {i}\n" for i in range(1, 2001))


# ------------------------------------------------------------------ tail
def test_tail_keeps_the_last_lines():
    assert tail("a\nb\nc\n", 2, 100) == ("b\nc\n", True)
    assert tail("a\nb\nc", 2, 100) == ("b\nc", True)  # no final newline: the last line still counts
    assert tail("a\nb\nc\n", 3, 100) == ("a\nb\nc\n", False)  # exactly that many: nothing left out
    assert tail("a\nb\nc\n", 0, 100) == ("a\nb\nc\n", False)  # 0: every line
    assert tail("", 5, 100) == ("", False)
    text, cut = tail(LOG, 1000, 1 << 20)
    assert cut and text.splitlines()[0] == "line 1001" and text.endswith("line 2000\n") and len(text.splitlines()) == 1000


def test_tail_cuts_bytes_at_a_line_boundary():
    log = "aaaa\nbbbb\ncccc\n"
    assert tail(log, 0, 15) == (log, False)
    assert tail(log, 0, 10) == ("bbbb\ncccc\n", True)  # exactly two lines fit
    assert tail(log, 0, 12) == ("bbbb\ncccc\n", True)  # never half a line
    assert tail(log, 0, 6) == ("cccc\n", True)
    assert tail(log, 2, 6) == ("cccc\n", True)  # both limits: the stricter wins


def test_a_last_line_longer_than_the_budget_is_cut_at_a_character_boundary():
    text, cut = tail("first\n" + "é" * 10 + "\n", 0, 8)  # é is 2 bytes: 8 bytes hold "\n" and 3.5 of them
    assert cut and text == "ééé\n" and len(text.encode()) <= 8
    text, cut = tail("ü" * 100, 0, 51)
    assert cut and text == "ü" * 25


# ------------------------------------------------------------------ the agent
class LogRunner:
    """RayRunner's `logs` (and what a session needs besides); run "slow" blocks until released."""

    def __init__(self, logs: dict[str, str]):
        self.logs_of = logs
        self.release = threading.Event()
        self.broken = False

    def logs(self, run_id):
        if run_id == "job-slow-r1":
            assert self.release.wait(10), "test never released the slow read"
        if self.broken:
            raise RuntimeError("Request failed with status code 500: dashboard down.")
        return self.logs_of.get(run_id)

    def inventory(self):
        return [GpuNode("n1", "virtual", 8, cpus=8)]

    def list_runs(self):
        return []

    def submit(self, start):
        pass

    def stop(self, run_id):
        return True

    def status(self, run_id):
        return RunReport(run_id, RunState.RUNNING)


def fetch(request_id: str, run_id: str, lines: int = 1000, max_bytes: int = 1 << 20) -> agent_pb2.SchedulerMessage:
    return agent_pb2.SchedulerMessage(fetch_run_logs=agent_pb2.FetchRunLogs(request_id=request_id, run_id=run_id, tail_lines=lines, max_bytes=max_bytes))


def test_the_agent_answers_from_a_thread_while_heartbeats_go_on():
    async def scenario():
        runner = LogRunner({"job-a-r1": LOG, "job-slow-r1": "slow\n"})
        agent = SiteAgent(AgentSettings("us-1", "us", "127.0.0.1:1", "t"), runner)
        agent._outbox = asyncio.Queue()
        sent: list[agent_pb2.AgentMessage] = []

        def drain(kind: str) -> list:
            while not agent._outbox.empty():
                sent.append(agent._outbox.get_nowait())
            return [getattr(m, kind) for m in sent if m.WhichOneof("body") == kind]

        async def until(check, what: str):
            deadline = time.monotonic() + 10
            while not check():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                await asyncio.sleep(0.01)

        beats = asyncio.create_task(agent._heartbeat_loop(0.02))
        agent._follow(fetch("q-slow", "job-slow-r1"))
        agent._follow(fetch("q-1", "job-a-r1", lines=3, max_bytes=100))
        await until(lambda: drain("run_logs"), "the answer for job-a-r1")
        before = len(drain("heartbeat"))
        await asyncio.sleep(0.2)  # Ray is slow for job-slow-r1: the loop is not
        assert len(drain("heartbeat")) >= before + 3
        [first] = drain("run_logs")
        assert (first.request_id, first.run_id, first.text, first.truncated, first.error) == ("q-1", "job-a-r1", "line 1998\nline 1999\nline 2000\n", True, "")
        runner.release.set()
        await until(lambda: len(drain("run_logs")) == 2, "the slow answer")
        assert drain("run_logs")[1].text == "slow\n" and not drain("run_logs")[1].truncated

        agent._follow(fetch("q-2", "job-gone-r1"))  # Ray has no such job: an answer, not a crash
        await until(lambda: len(drain("run_logs")) == 3, "the answer for an unknown run")
        gone = drain("run_logs")[2]
        assert gone.missing and "Ray has no job job-gone-r1" in gone.error and gone.text == ""
        runner.broken = True
        agent._follow(fetch("q-3", "job-a-r1"))
        await until(lambda: len(drain("run_logs")) == 4, "the answer while Ray fails")
        broken = drain("run_logs")[3]
        assert not broken.missing and "status code 500" in broken.error
        beats.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 30))


# ------------------------------------------------------------------ the scheduler's requests
def requests(max_wait_s: float = 5.0, per_site: int = 8) -> tuple[LogRequests, AgentSession]:
    session = AgentSession("us-1")
    controller = SimpleNamespace(sessions={"us-1": session}, clock=lambda: 1_800_000_000.0)
    return LogRequests(controller, max_wait_s=max_wait_s, per_site=per_site), session


async def sent_to(session: AgentSession) -> FetchRunLogs:
    order = await asyncio.wait_for(session.outbox.get(), 5)
    assert isinstance(order, FetchRunLogs)
    return order


RUNNING = a_job().on("us-1").build()


def test_answers_are_matched_by_request_id_and_held_to_the_request():
    async def scenario():
        logs, session = requests()
        first = asyncio.create_task(logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id)))
        second = asyncio.create_task(logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id, tail_lines=2, max_bytes=64)))
        a, b = await sent_to(session), await sent_to(session)
        assert (a.run_id, a.tail_lines, a.max_bytes) == (RUNNING.run_id, 1000, 1 << 20)  # the defaults
        assert (b.tail_lines, b.max_bytes) == (2, 64)
        logs.answered(AgentSession("us-1"), RunLogs(b.request_id, b.run_id, "from another stream\n"))  # not the stream asked: ignored
        logs.answered(session, RunLogs(b.request_id, b.run_id, "x\ny\nz\n"))  # more than asked: cut to it
        logs.answered(session, RunLogs(a.request_id, a.run_id, "hello\n"))
        one, two = await first, await second
        assert (one.job_id, one.run_id, one.site_id, one.text, one.truncated) == (RUNNING.job_id, RUNNING.run_id, "us-1", "hello\n", False)
        assert (two.text, two.truncated) == ("y\nz\n", True)
        assert one.fetched_at.seconds == 1_800_000_000 and logs.pending == {}

    asyncio.run(scenario())


def test_tail_lines_zero_asks_for_every_line():
    async def scenario():
        logs, session = requests()
        call = asyncio.create_task(logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id, tail_lines=0)))
        order = await sent_to(session)
        assert order.tail_lines == 0
        logs.answered(session, RunLogs(order.request_id, order.run_id, LOG))
        assert (await call).text == LOG

    asyncio.run(scenario())


def test_a_silent_agent_is_unavailable_after_the_bounded_wait():
    async def scenario():
        logs, session = requests(max_wait_s=0.2)
        started = time.monotonic()
        with pytest.raises(Unavailable, match="did not answer with run .* within 0.2 s"):
            await logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id))
        assert time.monotonic() - started < 1.0 and logs.pending == {}
        with pytest.raises(Unavailable, match="within 0.05 s"):  # the caller's deadline is nearer than max_wait_s
            await logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id), time_left_s=0.1)
        late = await sent_to(session)
        logs.answered(session, RunLogs(late.request_id, late.run_id, "too late\n"))  # no one waits: dropped

    asyncio.run(scenario())


def test_an_agent_that_goes_away_or_is_not_there_is_unavailable():
    async def scenario():
        logs, session = requests()
        call = asyncio.create_task(logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id)))
        await sent_to(session)
        logs.session_ended(session)
        with pytest.raises(Unavailable, match="disconnected before it answered"):
            await call
        logs.controller.sessions.clear()
        with pytest.raises(Unavailable, match="site us-1's agent is not connected"):
            await logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id))

    asyncio.run(scenario())


def test_the_agents_errors_and_the_requests_that_cannot_be_answered():
    async def scenario():
        logs, session = requests(per_site=1)
        request = logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id)
        for answer, error, match in (
            (dict(error="Ray has no job", missing=True), FailedPrecondition, "no longer has run"),
            (dict(error="dashboard down"), Unavailable, "could not read run .*: dashboard down"),
        ):
            call = asyncio.create_task(logs.job_logs(RUNNING, request))
            order = await sent_to(session)
            with pytest.raises(Unavailable, match="has 1 log requests waiting already"):  # one at a time for this site
                await logs.job_logs(RUNNING, request)
            logs.answered(session, RunLogs(order.request_id, order.run_id, **answer))
            with pytest.raises(error, match=match):
                await call
        pending = dataclasses.replace(RUNNING, state=JobState.PENDING, attempt=0, site_id="")
        with pytest.raises(FailedPrecondition, match="has not run yet \\(PENDING\\)"):
            await logs.job_logs(pending, request)
        served = a_job().inference(1, 1).spec_with(serve_import_path="app:app").on("us-1").build()
        with pytest.raises(FailedPrecondition, match="runs on Ray Serve"):
            await logs.job_logs(served, request)
        with pytest.raises(InvalidArgument, match="max_bytes is 4194304; at most 2097152"):
            await logs.job_logs(RUNNING, logs_pb2.GetJobLogsRequest(job_id=RUNNING.job_id, max_bytes=4 << 20))
        assert session.outbox.empty()

    asyncio.run(scenario())


# ------------------------------------------------------------------ through gRPC
ACME, GLOBEX, VIEWER, SITE = "acme-token-0123456789abcdef", "globex-token-0123456789abcdef", "viewer-token-0123456789abcdef", "site-token-0123456789abcdef"
OPS, READER = "ops-token-0123456789abcdef", "reader-token-0123456789abcdef"


def test_get_job_logs_over_grpc_with_a_real_agent(tmp_path):
    async def main():
        config = SchedulerConfig(
            listen="127.0.0.1:0",
            database=tmp_path / "pp.db",
            regions=["us"],
            tenants={"acme": ACME, "globex": GLOBEX, "audit": {"token": VIEWER, "role": "viewer"}},
            sites={"us-1": SITE},
            operators={"ops": OPS, "audit-ops": {"token": READER, "role": "read_only"}},
            heartbeat_interval_s=0.2,
            schedule_interval_s=0.1,
        )
        server = SchedulerServer(config)
        port = await server.start()
        runner = LogRunner({})
        runner.submit = lambda start: runner.logs_of.setdefault(start.run_id, f"hello from {start.run_id}\n")
        settings = AgentSettings("us-1", "us", f"127.0.0.1:{port}", SITE, poll_starting_s=0.05, poll_running_s=0.05, inventory_period_s=0.5)
        agent = SiteAgent(settings, runner)
        running = asyncio.create_task(agent.run_forever())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                tenant, operator = tenant_pb2_grpc.TenantServiceStub(channel), operator_pb2_grpc.OperatorServiceStub(channel)

                async def call(rpc, request, token, timeout=10, stub=tenant):
                    return await getattr(stub, rpc)(request, metadata=(("authorization", f"Bearer {token}"),), timeout=timeout)

                async def refused(request, token, timeout=10):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call("GetJobLogs", request, token, timeout)
                    return err.value.code(), err.value.details()

                job = (await call("SubmitJob", tenant_pb2.SubmitJobRequest(client_request_id="logs-1", spec=spec("python train.py", gpus=1)), ACME)).job
                never = (await call("SubmitJob", tenant_pb2.SubmitJobRequest(client_request_id="logs-2", spec=spec("python big.py", gpus=64)), ACME)).job
                deadline = time.monotonic() + 10
                while (await call("GetJob", tenant_pb2.GetJobRequest(job_id=job.job_id), ACME)).state != types_pb2.JOB_STATE_RUNNING:
                    assert time.monotonic() < deadline, "the job never ran"
                    await asyncio.sleep(0.05)
                request = logs_pb2.GetJobLogsRequest(job_id=job.job_id)
                logs = await call("GetJobLogs", request, ACME)
                assert (logs.job_id, logs.run_id, logs.site_id, logs.text) == (job.job_id, f"{job.job_id}-r1", "us-1", f"hello from {job.job_id}-r1\n")
                code, details = await refused(request, GLOBEX)
                assert code == grpc.StatusCode.NOT_FOUND and details == f"job '{job.job_id}' not found"  # the same as GetJob: nothing leaks
                assert (await refused(request, VIEWER))[0] == grpc.StatusCode.NOT_FOUND  # a viewer may call it (its own jobs only)
                for token in (OPS, READER):  # operators read any tenant's job's
                    assert (await call("GetJobLogs", request, token, stub=operator)).text == logs.text
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call("GetJobLogs", logs_pb2.GetJobLogsRequest(job_id="job-none"), OPS, stub=operator)
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
                code, details = await refused(logs_pb2.GetJobLogsRequest(job_id=never.job_id), ACME)
                assert code == grpc.StatusCode.FAILED_PRECONDITION and "has not run yet (PENDING)" in details

                runner.logs_of[f"{job.job_id}-r1"] = "slow\n"
                runner.logs = lambda run_id, slow=runner.logs: (time.sleep(3), slow(run_id))[1]  # Ray slower than the caller waits
                started = time.monotonic()
                code, details = await refused(request, ACME, timeout=1.5)
                assert code == grpc.StatusCode.UNAVAILABLE and "did not answer" in details and time.monotonic() - started < 1.5

                agent.stop()
                await asyncio.wait_for(running, 10)
                deadline = time.monotonic() + 5
                while "us-1" in server.controller.sessions:
                    assert time.monotonic() < deadline, "the scheduler never saw the agent go"
                    await asyncio.sleep(0.05)
                code, details = await refused(request, ACME)
                assert code == grpc.StatusCode.UNAVAILABLE and "site us-1's agent is not connected" in details
        finally:
            agent.stop()
            await asyncio.wait_for(running, 10)
            await server.stop(0)

    asyncio.run(asyncio.wait_for(main(), 60))
