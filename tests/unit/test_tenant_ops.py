"""Tenant operations: reprioritize a job and cancel jobs by label. The pure rules
(core/tenant_ops.py), then over real gRPC with an in-process scheduler, then the CLI."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from scheduler.api.v1 import tenant_pb2, tenant_pb2_grpc, types_pb2
from scheduler.cli.main import main
from scheduler.core import tenant_ops
from scheduler.core.decisions import StopRun
from scheduler.core.errors import FailedPrecondition, InvalidArgument
from scheduler.core.jobs import JobState
from scheduler.core.placement import queue_order
from scheduler.server.app import SchedulerServer
from scheduler.server.config import SchedulerConfig
from tests.builders import NOW, a_job

S = JobState
TOKEN = "acme-" + "a" * 24
OTHER = "bolt-" + "b" * 24


# ------------------------------------------------------------------ reprioritize, pure
def test_a_pending_job_moves_in_the_queue_at_once_and_the_change_is_logged():
    first, second = a_job().seq_no(1).build(), a_job().seq_no(2).build()
    decision = tenant_ops.reprioritize(second, 7, NOW)
    raised = decision.jobs[-1]
    assert raised.spec.priority == 7 and raised.state == S.PENDING
    assert [j.job_id for j in queue_order([first, raised])] == [second.job_id, first.job_id]
    (event,) = decision.events
    assert (event.from_state, event.to_state, event.reason) == (S.PENDING, S.PENDING, "priority 0 -> 7 by tenant")


def test_a_running_job_keeps_its_run_and_carries_its_new_priority():
    job = a_job().priority(3).on("tx-1", S.RUNNING).build()
    decision = tenant_ops.reprioritize(job, -2, NOW)
    assert not decision.orders
    (new,) = decision.jobs
    assert (new.state, new.site_id, new.run_id, new.spec.priority) == (S.RUNNING, "tx-1", job.run_id, -2)
    assert (decision.events[0].run_id, decision.events[0].site_id) == (job.run_id, "tx-1")
    assert decision.events[0].reason == "priority 3 -> -2 by tenant"


@pytest.mark.parametrize("state", [S.SUCCEEDED, S.FAILED, S.CANCELLED, S.CANCELLING])
def test_a_job_that_ended_or_is_ending_cannot_be_reprioritized(state):
    with pytest.raises(FailedPrecondition):
        tenant_ops.reprioritize(a_job().on("tx-1", state).build(), 5, NOW)


@pytest.mark.parametrize("priority", [-1001, 1001])
def test_a_priority_outside_submissions_bounds_is_refused(priority):
    with pytest.raises(InvalidArgument, match="between -1000 and 1000"):
        tenant_ops.reprioritize(a_job().build(), priority, NOW)


def test_the_same_priority_again_changes_nothing():
    assert not tenant_ops.reprioritize(a_job().priority(4).build(), 4, NOW)


# ------------------------------------------------------------------ cancel by label, pure
def test_only_the_callers_unfinished_jobs_carrying_every_label_are_chosen_oldest_first():
    x = {"team": "x", "run": "y"}
    mine_new = a_job().seq_no(9).spec_with(labels=x).build()
    mine_old = a_job().seq_no(3).spec_with(labels={**x, "extra": "1"}).on("tx-1", S.RUNNING).build()
    half = a_job().seq_no(4).spec_with(labels={"team": "x"}).build()
    theirs = a_job().seq_no(5).of("bolt").spec_with(labels=x).build()
    ended = a_job().seq_no(6).spec_with(labels=x).on("tx-1", S.CANCELLING).build()
    chosen, matched, decision = tenant_ops.cancel_by_label([mine_new, mine_old, half, theirs, ended], "acme", x, (), "", NOW, False)
    assert [j.job_id for j in chosen] == [mine_old.job_id, mine_new.job_id] and matched == 2
    assert {(j.job_id, j.state) for j in decision.jobs} == {(mine_old.job_id, S.CANCELLING), (mine_new.job_id, S.CANCELLED)}
    assert decision.orders == [StopRun("tx-1", mine_old.run_id, "cancelled by tenant")]


def test_a_dry_run_decides_nothing_and_states_narrow_the_match():
    running = a_job().spec_with(labels={"a": "1"}).on("tx-1", S.RUNNING).build()
    pending = a_job().spec_with(labels={"a": "1"}).build()
    chosen, matched, decision = tenant_ops.cancel_by_label([running, pending], "acme", {"a": "1"}, [S.PENDING], "", NOW, True)
    assert [j.job_id for j in chosen] == [pending.job_id] and matched == 1 and not decision


def test_at_most_the_limit_is_chosen_and_all_matches_are_counted():
    jobs = [a_job().seq_no(i).spec_with(labels={"a": "1"}).build() for i in range(1, 6)]
    chosen, matched = tenant_ops.select_for_cancel(jobs, "acme", {"a": "1"}, tenant_ops.CANCELLABLE, limit=2)
    assert [j.seq for j in chosen] == [1, 2] and matched == 5


@pytest.mark.parametrize(
    ("selector", "states", "complaint"),
    [({}, (), "selector is empty"), ({"bad key!": "v"}, (), "not a valid label name"), ({"a": "1"}, [S.SUCCEEDED], "SUCCEEDED cannot be cancelled")],
)
def test_a_selector_that_matches_everything_or_is_malformed_is_refused(selector, states, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        tenant_ops.check_selector(selector, states)


# ------------------------------------------------------------------ over gRPC, and the CLI
def _spec(**labels) -> types_pb2.JobSpec:
    return types_pb2.JobSpec(
        kind=types_pb2.JOB_KIND_TRAINING, entrypoint="python train.py", resources=types_pb2.Resources(gpus=1), allowed_regions=["us"], labels=labels
    )


def _serve(tmp_path, body):
    async def run():
        config = SchedulerConfig(listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"], tenants={"acme": TOKEN, "bolt": OTHER})
        server = SchedulerServer(config)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await body(server, port, tenant_pb2_grpc.TenantServiceStub(channel))
        finally:
            await server.stop(0)

    asyncio.run(run())


def _as(token):
    return (("authorization", f"Bearer {token}"),)


async def _submit(stub, token, request_id, **labels):
    response = await stub.SubmitJob(tenant_pb2.SubmitJobRequest(client_request_id=request_id, spec=_spec(**labels)), metadata=_as(token), timeout=10)
    return response.job.job_id


async def _reasons(server, stub):
    await server.controller.schedule_once()  # the pass the kick asks for, run now: no waiting on the loop
    listed = await stub.ListJobs(tenant_pb2.ListJobsRequest(), metadata=_as(TOKEN), timeout=10)
    return {j.job_id: j.pending_reason for j in listed.jobs}


def test_reprioritize_over_grpc_reorders_the_queue_and_logs_the_change(tmp_path):
    async def body(server, port, stub):
        first, second = await _submit(stub, TOKEN, "r1"), await _submit(stub, TOKEN, "r2")
        before = await _reasons(server, stub)
        assert before[second].startswith("1 job ahead") and not before[first].startswith("1 job ahead")
        job = await stub.ReprioritizeJob(tenant_pb2.ReprioritizeJobRequest(job_id=second, priority=7), metadata=_as(TOKEN), timeout=10)
        assert job.spec.priority == 7 and job.state == types_pb2.JOB_STATE_PENDING
        after = await _reasons(server, stub)
        assert after[first].startswith("1 job ahead") and not after[second].startswith("1 job ahead")
        events = stub.WatchJobs(tenant_pb2.WatchJobsRequest(job_id=second), metadata=_as(TOKEN), timeout=10)
        assert [(await events.read()).reason for _ in range(2)] == ["submitted", "priority 0 -> 7 by tenant"]
        events.cancel()
        for token, priority, code in ((OTHER, 1, grpc.StatusCode.NOT_FOUND), (TOKEN, 5000, grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ReprioritizeJob(tenant_pb2.ReprioritizeJobRequest(job_id=second, priority=priority), metadata=_as(token), timeout=10)
            assert refused.value.code() == code
        await stub.CancelJob(tenant_pb2.CancelJobRequest(job_id=first), metadata=_as(TOKEN), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ReprioritizeJob(tenant_pb2.ReprioritizeJobRequest(job_id=first, priority=2), metadata=_as(TOKEN), timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    _serve(tmp_path, body)


def test_cancel_by_label_over_grpc_reaches_only_the_callers_matching_jobs(tmp_path):
    async def body(server, port, stub):
        hit = [await _submit(stub, TOKEN, f"h{i}", team="x", run="y") for i in range(3)]
        miss = await _submit(stub, TOKEN, "m", team="x", run="z")
        theirs = await _submit(stub, OTHER, "t", team="x", run="y")
        request = tenant_pb2.CancelJobsRequest(selector={"team": "x", "run": "y"}, dry_run=True)
        dry = await stub.CancelJobs(request, metadata=_as(TOKEN), timeout=10)
        assert [j.job_id for j in dry.jobs] == hit and dry.matched == 3 and not dry.more
        assert all(server.controller.jobs[j].state == S.PENDING for j in [*hit, miss, theirs])  # the dry run changed nothing
        request.dry_run = False
        done = await stub.CancelJobs(request, metadata=_as(TOKEN), timeout=10)
        assert [(j.job_id, j.state) for j in done.jobs] == [(j, types_pb2.JOB_STATE_CANCELLED) for j in hit]
        assert {j: server.controller.jobs[j].state for j in (miss, theirs)} == {miss: S.PENDING, theirs: S.PENDING}
        again = await stub.CancelJobs(request, metadata=_as(TOKEN), timeout=10)
        assert not again.jobs and again.matched == 0
        for bad in (tenant_pb2.CancelJobsRequest(), tenant_pb2.CancelJobsRequest(selector={"a": "1"}, states=[types_pb2.JOB_STATE_SUCCEEDED])):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CancelJobs(bad, metadata=_as(TOKEN), timeout=10)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    _serve(tmp_path, body)


def test_the_cli_cancels_by_label_with_a_dry_run_first_and_reprioritizes(tmp_path, capsys):
    async def body(server, port, stub):
        job = await _submit(stub, TOKEN, "c1", team="x", run="y")
        cli = ["--scheduler", f"127.0.0.1:{port}", "--token", TOKEN]
        assert await asyncio.to_thread(main, ["cancel", "--label", "team=x", "--label", "run=y", "--dry-run", *cli]) == 0
        assert "would cancel 1 of 1 matching job" in capsys.readouterr().out and server.controller.jobs[job].state == S.PENDING
        assert await asyncio.to_thread(main, ["reprioritize", job, "9", *cli]) == 0
        assert f"{job}  priority 9, PENDING" in capsys.readouterr().out
        assert await asyncio.to_thread(main, ["cancel", "--label", "team=x", "--label", "run=y", *cli]) == 0
        assert "cancelled 1 of 1 matching job" in capsys.readouterr().out and server.controller.jobs[job].state == S.CANCELLED
        with pytest.raises(SystemExit) as usage:
            await asyncio.to_thread(main, ["cancel", job, "--label", "team=x", *cli])
        assert usage.value.code == 2

    _serve(tmp_path, body)
