"""Accounting (core/usage.py, docs/usage.md): GPU-seconds while RUNNING clipped to the window,
energy at the meter through power caps, caps and preemptions suffered, credits; the totals
reconcile with the job history both ways (per job and per tenant, report and metrics, and a
plain walk of the event log); the usage RPCs and `powerplane usage` over real gRPC,
tenant-isolated."""

from __future__ import annotations

import asyncio
import csv
import io
import math
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from scheduler.api.convert import timestamp
from scheduler.api.v1 import operator_pb2_grpc, tenant_pb2_grpc, usage_pb2
from scheduler.cli.main import main as cli
from scheduler.core.decisions import CapRunPower, Decision, SetMiningTargets, StartRun, StopRun
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobEvent, JobState, transition
from scheduler.core.runs import RunReport, RunState
from scheduler.core.usage import J_PER_MWH, UsageRates, UsageTally, tenant_usage
from scheduler.server.app import SchedulerServer
from scheduler.server.config import AccountingConfig, SchedulerConfig, TenantRatesConfig
from scheduler.server.metrics import SchedulerMetrics
from scheduler.server.usage_reads import usage
from tests.builders import NOW, FakeClock, a_job, a_site_power
from tests.unit.agent_script import confirm, drain, start_when_room
from tests.unit.test_controller_power import POWER, run_with_controller, training

S = JobState
SITE = a_site_power("tx-1").cap_mw(7).with_gpus(8).build()  # gpu_load_w 1000 W, overhead from the builder
SITES = {"tx-1": SITE}


def ev(job, frm, to, at, run=1, fraction=None, tenant="acme"):
    return JobEvent(job, tenant, frm, to, "r", at, "tx-1", f"{job}-r{run}", power_fraction=fraction)


def gpus(n=8):
    return lambda job_id: n


def test_a_run_counts_only_while_running_and_only_inside_the_window():
    events = [ev("j", None, S.PENDING, 0), ev("j", S.PENDING, S.SCHEDULED, 10), ev("j", S.SCHEDULED, S.RUNNING, 100), ev("j", S.RUNNING, S.CANCELLING, 1100), ev("j", S.CANCELLING, S.CANCELLED, 1200)]
    report = tenant_usage("acme", events, gpus(), SITES, 600, 2000, UsageRates(price_usd_per_mwh=100))
    assert report.totals.gpu_s == 8 * 500  # RUNNING 100..1100, clipped at 600; the stop is not billed
    assert report.totals.meter_j == pytest.approx(8 * 500 * SITE.gpu_load_w * SITE.overhead)
    assert report.cost_usd == pytest.approx(report.totals.meter_j / J_PER_MWH * 100)
    still_running = tenant_usage("acme", events[:3], gpus(), SITES, 0, 400)
    assert still_running.totals.gpu_s == 8 * 300  # counted up to the window's end
    assert tenant_usage("acme", events, gpus(), SITES, 1100, 2000).totals.gpu_s == 0


def test_power_caps_change_energy_and_are_counted_and_credited():
    events = [ev("j", S.SCHEDULED, S.RUNNING, 0), ev("j", S.RUNNING, S.RUNNING, 100, fraction=0.5), ev("j", S.RUNNING, S.RUNNING, 200, fraction=0.6),
              ev("j", S.RUNNING, S.RUNNING, 300, fraction=1.0), ev("j", S.RUNNING, S.SUCCEEDED, 400)]
    report = tenant_usage("acme", events, gpus(), SITES, 0, 1000, UsageRates(credit_usd_per_mwh=40))
    t, load = report.totals, 8 * SITE.gpu_load_w
    assert (t.gpu_s, t.capped_gpu_s, t.caps) == (8 * 400, 8 * 200, 1)  # 0.5 -> 0.6 is the same cap going on
    assert t.it_j == pytest.approx(load * (100 + 0.5 * 100 + 0.6 * 100 + 100))
    assert t.meter_j == pytest.approx(t.it_j * SITE.overhead)
    assert t.curtailed_j == pytest.approx(load * (0.5 * 100 + 0.4 * 100) * SITE.overhead)
    assert report.credits_usd == pytest.approx(t.curtailed_j / J_PER_MWH * 40)


def test_a_preemption_is_counted_with_its_runs_gpu_time_and_the_next_run_starts_uncapped():
    events = [ev("j", S.SCHEDULED, S.RUNNING, 0), ev("j", S.RUNNING, S.RUNNING, 50, fraction=0.7), ev("j", S.RUNNING, S.PREEMPTED, 100), ev("j", S.PREEMPTED, S.PENDING, 130),
              ev("j", S.PENDING, S.SCHEDULED, 150, run=2), ev("j", S.SCHEDULED, S.RUNNING, 200, run=2)]
    report = tenant_usage("acme", events, gpus(), SITES, 0, 300)
    t = report.totals
    assert (t.preemptions, t.preempted_gpu_s, t.gpu_s, t.capped_gpu_s) == (1, 8 * 100, 8 * 200, 8 * 50)
    assert t.it_j == pytest.approx(8 * SITE.gpu_load_w * (50 + 0.7 * 50 + 100))  # run 2 at full power


def test_tenant_totals_are_the_sums_of_its_jobs_and_other_tenants_do_not_count():
    events = [ev("a", S.SCHEDULED, S.RUNNING, 0), ev("b", S.SCHEDULED, S.RUNNING, 10), ev("a", S.RUNNING, S.RUNNING, 20, fraction=0.5), ev("x", S.SCHEDULED, S.RUNNING, 0, tenant="other"),
              ev("b", S.RUNNING, S.PREEMPTED, 50), ev("a", S.RUNNING, S.FAILED, 70)]
    sizes = {"a": 4, "b": 2, "x": 64}
    report = tenant_usage("acme", events, sizes.__getitem__, SITES, 0, 100)
    assert [job for job, _ in report.jobs] == ["a", "b"]
    for field in ("gpu_s", "capped_gpu_s", "it_j", "meter_j", "curtailed_j", "caps", "preemptions", "preempted_gpu_s"):
        assert getattr(report.totals, field) == pytest.approx(sum(getattr(f, field) for _, f in report.jobs)), field
    assert report.totals.gpu_s == 4 * 70 + 2 * 40


def test_a_site_without_power_settings_counts_gpu_time_but_no_energy():
    report = tenant_usage("acme", [ev("j", S.SCHEDULED, S.RUNNING, 0)], gpus(), {}, 0, 10)
    assert (report.totals.gpu_s, report.totals.meter_j, report.unknown_sites) == (80, 0, ("tx-1",))


def test_a_tally_read_along_the_way_agrees_with_the_report_and_is_not_changed_by_reading():
    events = [ev("j", S.SCHEDULED, S.RUNNING, 0), ev("j", S.RUNNING, S.RUNNING, 100, fraction=0.5)]
    tally = UsageTally(SITES, gpus())
    tally.add_all(events)
    first, again = tally.figures(300), tally.figures(300)
    assert first == again == {"acme": tenant_usage("acme", events, gpus(), SITES, -math.inf, 300).totals}


def _event_log_walk(events, gpus_of, site):
    """What the event log implies, walked plainly: each entry into RUNNING to its job's next
    event, at the fraction of the run's last cap event (1.0 at a run's start)."""
    gpu_s = meter_j = 0.0
    fraction, since = {}, {}
    for e in events:
        if e.job_id in since:
            start, f = since.pop(e.job_id)
            gpu_s += gpus_of[e.job_id] * (e.at - start)
            meter_j += gpus_of[e.job_id] * (e.at - start) * site.gpu_load_w * f * site.overhead
        if e.power_fraction is not None:
            fraction[e.run_id] = e.power_fraction
        if e.to_state == S.RUNNING:
            since[e.job_id] = (e.at, fraction.get(e.run_id, 1.0))
    return gpu_s, meter_j


def test_usage_reconciles_with_the_job_history_a_controller_wrote(tmp_path):
    """Two jobs driven through a real controller and store (a cap, a preemption, a requeue, a
    second run, an end): report totals = sum over jobs = the event log walked plainly =
    what the metrics counted along the way."""

    async def body(controller, session, clock):
        metrics = SchedulerMetrics(controller)
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        capped, _ = await controller.submit("acme", "r1", training(gpus=4, tolerance=25))
        await controller.schedule_once()
        await start_when_room(controller, session)
        clock.advance(5)
        await controller.on_run_reports("tx-1", [RunReport(f"{capped.job_id}-r1", RunState.RUNNING)])
        clock.advance(600)
        run_w = 4 * (POWER.gpu_load_w - POWER.gpu_idle_w) * POWER.overhead
        floor_w = (POWER.gpus * POWER.gpu_idle_w + POWER.mining_floor_w) * POWER.overhead
        await controller.post_grid_event(GridEvent("cut", GridEventKind.CAP_LIMIT, start=clock.now, end=clock.now + 900, site_id="tx-1", cap_w=floor_w + 0.8 * run_w))
        assert any(isinstance(o, CapRunPower) and o.power_fraction < 1 for o in drain(session))
        clock.advance(300)
        await controller.post_grid_event(GridEvent("cut2", GridEventKind.CAP_LIMIT, start=clock.now, end=clock.now + 900, site_id="tx-1", cap_w=floor_w + 0.1 * run_w))
        assert any(isinstance(o, StopRun) for o in drain(session))
        clock.advance(20)
        await controller.on_run_reports("tx-1", [RunReport(f"{capped.job_id}-r1", RunState.STOPPED)])
        assert controller.jobs[capped.job_id].state == S.PENDING
        await controller.end_grid_event("cut2", None, "test")
        await controller.end_grid_event("cut", None, "test")
        clock.advance(60)
        await controller.schedule_once()
        run2 = await _second_start(controller, session, clock)
        clock.advance(5)
        await controller.on_run_reports("tx-1", [RunReport(run2, RunState.RUNNING)])
        clock.advance(1200)
        await controller.on_run_reports("tx-1", [RunReport(run2, RunState.SUCCEEDED)])
        clock.advance(100)

        end = clock.now
        request = usage_pb2.GetUsageRequest(tenant="acme", to=timestamp(end), **{"from": timestamp(NOW - 1)})
        report = await usage(controller, "acme", request, known_tenant=True)
        events = await controller.committer.read(controller.committer.store.events_after, "acme", 0, "", 10_000)
        walked_gpu_s, walked_meter_j = _event_log_walk(events, {capped.job_id: 4}, POWER)
        t = report.totals
        assert t.preemptions == 1 and t.power_caps == 1 and 0 < t.capped_gpu_hours < t.gpu_hours
        assert t.gpu_hours * 3600 == pytest.approx(walked_gpu_s) == pytest.approx(4 * (600 + 300 + 1200))
        assert t.meter_mwh * J_PER_MWH == pytest.approx(walked_meter_j)
        assert t.gpu_hours == pytest.approx(sum(j.figures.gpu_hours for j in report.jobs))
        assert t.meter_mwh == pytest.approx(sum(j.figures.meter_mwh for j in report.jobs))
        counted = metrics.usage.figures(end)["acme"]  # the metrics, kept decision by decision
        assert (counted.gpu_s, counted.caps, counted.preemptions) == (pytest.approx(walked_gpu_s), 1, 1)
        assert counted.meter_j == pytest.approx(walked_meter_j)

    # No background passes: on a busy machine one could run between the body's own steps
    # (CI once saw the requeued run never restart), and the body drives every pass itself.
    run_with_controller(tmp_path, body, FakeClock(), loops=False)


async def _second_start(controller, session, clock) -> str:
    """Dispatch until the requeued job's second run starts, the agent reporting its fleets at their targets."""
    targets = None
    for _ in range(10):
        await controller.dispatch_power(sweep=True)
        orders = drain(session)
        starts = [o.run_id for o in orders if isinstance(o, StartRun)]
        if starts:
            return starts[0]
        targets = [o for o in orders if isinstance(o, SetMiningTargets)] or targets
        if targets:
            await confirm(controller, targets)
        clock.advance(30)
        await controller.schedule_once()
    raise AssertionError(f"the requeued job never started again: {[(j.state, j.pending_reason, j.reason) for j in controller.jobs.values()]}")


TOKENS = {"acme": "a" * 20, "beta": "b" * 20, "ops": "o" * 20}


def test_usage_over_grpc_and_the_cli_is_tenant_isolated(tmp_path, capsys):
    async def main():
        config = SchedulerConfig(
            listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"], tenants={"acme": TOKENS["acme"], "beta": TOKENS["beta"]}, operators={"ops": TOKENS["ops"]},
            accounting=AccountingConfig(price_usd_per_mwh=50, tenants={"acme": TenantRatesConfig(price_usd_per_mwh=95)}),
        )
        server = SchedulerServer(config)
        port = await server.start()
        controller = server.controller
        try:
            job, _ = await controller.submit("acme", "r1", a_job().training(gpus=2).in_regions("us").build().spec)
            now = controller.clock()
            job, e1 = transition(controller.jobs[job.job_id], S.SCHEDULED, "placed", now - 7200, site_id="us-1", attempt=1)
            job, e2 = transition(job, S.RUNNING, "running", now - 7200)
            job, e3 = transition(job, S.SUCCEEDED, "done", now - 3600)
            await controller.apply(Decision(jobs=[job], events=[e1, e2, e3]))
            request = usage_pb2.GetUsageRequest(to=timestamp(now + 10), **{"from": timestamp(now - 86400)})
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                tenant, operator = tenant_pb2_grpc.TenantServiceStub(channel), operator_pb2_grpc.OperatorServiceStub(channel)

                def as_(who):
                    return (("authorization", f"Bearer {TOKENS[who]}"),)

                own = await tenant.GetUsage(request, metadata=as_("acme"), timeout=10)
                assert own.totals.gpu_hours == pytest.approx(2.0) and own.price_usd_per_mwh == 95 and [j.job_id for j in own.jobs] == [job.job_id]
                assert own.unknown_sites == ["us-1"] and own.history_complete
                assert seconds_of(own.to) <= now + 10
                for who, call, tenant_name, code in (
                    ("beta", tenant.GetUsage, "acme", grpc.StatusCode.NOT_FOUND),  # another tenant's usage
                    ("ops", operator.GetTenantUsage, "nobody", grpc.StatusCode.NOT_FOUND),
                    ("acme", operator.GetTenantUsage, "acme", grpc.StatusCode.PERMISSION_DENIED),
                ):
                    asked = usage_pb2.GetUsageRequest(tenant=tenant_name, to=request.to, **{"from": getattr(request, "from")})
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await call(asked, metadata=as_(who), timeout=10)
                    assert refused.value.code() == code, who
                theirs = await operator.GetTenantUsage(usage_pb2.GetUsageRequest(tenant="beta", to=request.to, **{"from": getattr(request, "from")}), metadata=as_("ops"), timeout=10)
                assert theirs.totals.gpu_hours == 0 and theirs.price_usd_per_mwh == 50
                for start, end in ((now - 10, now - 20), (now + 100, now + 200)):  # backwards; in the future
                    bad = usage_pb2.GetUsageRequest(to=timestamp(end), **{"from": timestamp(start)})
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await tenant.GetUsage(bad, metadata=as_("acme"), timeout=10)
                    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            day = datetime.fromtimestamp(now, UTC).date()
            base = ["--scheduler", f"127.0.0.1:{port}", "--from", str(day - timedelta(days=1)), "--to", str(day + timedelta(days=1))]
            capsys.readouterr()
            assert await asyncio.to_thread(cli, ["usage", "--token", TOKENS["ops"], "--tenant", "acme", "--output", "csv", *base]) == 0
            rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
            assert [r["job_id"] for r in rows] == [job.job_id, "TOTAL"] and float(rows[-1]["gpu_hours"]) == pytest.approx(2.0)
            out_file = tmp_path / "usage.csv"
            assert await asyncio.to_thread(cli, ["usage", "--token", TOKENS["acme"], "--tenant", "acme", "--csv", str(out_file), *base]) == 0
            assert out_file.read_text().splitlines()[-1].startswith("TOTAL,2.000")
            assert await asyncio.to_thread(cli, ["usage", "--token", TOKENS["acme"], "--tenant", "acme", *base]) == 0
            assert "GPU-hours 2.00" in capsys.readouterr().out
            assert await asyncio.to_thread(cli, ["usage", "--token", TOKENS["beta"], "--tenant", "acme", *base]) == 1
            assert "NOT_FOUND" in capsys.readouterr().err
        finally:
            await server.stop(0)

    asyncio.run(main())


def seconds_of(ts) -> float:
    return ts.seconds + ts.nanos / 1e9
