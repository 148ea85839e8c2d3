"""The scheduler's Prometheus metrics (scheduler/server/metrics.py) against a real controller
and SQLite store: the values are what GetSite shows, names carry base units, no label holds
a job id, and /metrics answers over HTTP from its own thread."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.server.metrics import SchedulerMetrics
from scheduler.store.sqlite import SqliteStore
from tests.builders import NOW, FakeClock, a_job, a_site_power
from tests.unit.agent_script import confirm, drain, start_when_room

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S19XP", 1000, "s19").with_miners("S21", 1000).with_gpus(8).build()


def config(**extra) -> SchedulerConfig:
    return SchedulerConfig(regions=["us"], sites={"tx-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, **extra)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


async def running_site(tmp_path):
    controller = Controller(SqliteStore(tmp_path / "pp.db"), config(), FakeClock())
    await controller.start(loops=False)
    session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], POWER)
    await controller.dispatch_power(sweep=True)
    await confirm(controller, drain(session))
    await controller.submit("acme", "r1", a_job().training(gpus=8).in_regions("us").build().spec)
    await controller.post_grid_event(GridEvent("cut", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 600, site_id="tx-1", cap_w=5e6))
    return controller, session


def test_the_metrics_are_what_get_site_shows(tmp_path):
    async def main():
        controller, _ = await running_site(tmp_path)
        try:
            metrics = SchedulerMetrics(controller)
            controller.timings("schedule", 0.004)
            got = samples(generate_latest(metrics.registry).decode())
            figures = controller.power.figures("tx-1", controller.jobs, controller.clock())
            site = (("site", "tx-1"),)
            assert got[("powerplane_site_cap_watts", site)] == figures.cap_w == 5e6
            assert got[("powerplane_site_committed_watts", site)] == figures.committed_w
            assert got[("powerplane_site_mining_target_watts", site)] == figures.mining_target_w
            assert got[("powerplane_fleet_target_watts", (("fleet", "s19"), ("site", "tx-1")))] == dict((f, t) for f, _, t in figures.fleets)["s19"]
            assert got[("powerplane_jobs", (("state", "pending"), ("tenant", "acme")))] == 1
            assert got[("powerplane_agent_connected", site)] == 1
            assert got[("powerplane_grid_events_active", (("kind", "cap_limit"),))] == 1
            assert got[("powerplane_scheduler_pass_seconds_count", (("pass", "schedule"),))] == 1
            for (name, labels), _ in got.items():
                assert not any(key in ("job", "job_id", "run_id") for key, _ in labels), name
                assert name.startswith("powerplane_"), name
                if any(word in name for word in ("cap", "metered", "committed", "mining", "_ai_", "headroom", "measured", "target")):
                    assert name.endswith("_watts"), name  # power in its base unit
        finally:
            await controller.stop()

    asyncio.run(main())


def test_metrics_answer_over_http_read_in_the_event_loop(tmp_path):
    async def main():
        controller, _ = await running_site(tmp_path)
        try:
            metrics = SchedulerMetrics(controller, asyncio.get_running_loop())
            port = metrics.serve("127.0.0.1", 0)

            def scrape() -> str:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                    return response.read().decode()

            text = await asyncio.to_thread(scrape)  # the loop keeps running: the collector reads in it
            assert samples(text)[("powerplane_site_cap_watts", (("site", "tx-1"),))] == 5e6
        finally:
            await controller.stop()

    asyncio.run(main())


def test_metrics_listen_must_be_host_and_port():
    assert config(metrics_listen="127.0.0.1:0").metrics_listen == "127.0.0.1:0"
    with pytest.raises(ValueError, match="metrics_listen must be host:port"):
        config(metrics_listen="localhost")


def test_response_times_pending_time_and_preemptions_are_observed_from_decisions(tmp_path):
    """A cut that preempts a running training run: its orders go out at once, the first
    reading under the cap 3 s later meets it; the job waited 7 s to be placed."""
    from scheduler.core.jobs import JobState
    from scheduler.core.runs import RunReport, RunState

    async def main():
        clock = FakeClock()
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config(), clock)
        await controller.start(loops=False)
        try:
            metrics = SchedulerMetrics(controller)
            session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], POWER)
            await controller.dispatch_power(sweep=True)
            await confirm(controller, drain(session))
            job, _ = await controller.submit("acme", "r1", a_job().training(gpus=8).in_regions("us").build().spec)
            clock.advance(7)
            await controller.schedule_once()
            await start_when_room(controller, session)
            await controller.on_run_reports("tx-1", [RunReport(controller.jobs[job.job_id].run_id, RunState.RUNNING)])
            assert controller.jobs[job.job_id].state == JobState.RUNNING

            clock.advance(1)
            floor_w = (POWER.gpus * POWER.gpu_idle_w + POWER.mining_floor_w) * POWER.overhead
            await controller.post_grid_event(GridEvent("deep", GridEventKind.CAP_LIMIT, start=clock(), end=clock() + 600, site_id="tx-1", cap_w=floor_w))
            orders = drain(session)
            assert controller.jobs[job.job_id].state == JobState.PREEMPTED
            clock.advance(3)
            await confirm(controller, orders)  # the agent reads the site down under the cap (meter 0 W here)

            got = samples(generate_latest(metrics.registry).decode())
            assert got[("powerplane_preemptions_total", (("cause", "grid_cap_limit"),))] == 1
            assert got[("powerplane_preemptions_total", (("cause", "grid_emergency"),))] == 0
            assert got[("powerplane_grid_event_response_seconds_count", (("step", "orders_sent"),))] == 1
            assert got[("powerplane_grid_event_response_seconds_sum", (("step", "orders_sent"),))] == 0  # orders left as it arrived
            assert got[("powerplane_grid_event_response_seconds_count", (("step", "cap_met"),))] == 1
            assert got[("powerplane_grid_event_response_seconds_sum", (("step", "cap_met"),))] == 3
            assert got[("powerplane_job_pending_seconds_count", (("tenant", "acme"),))] == 1
            assert got[("powerplane_job_pending_seconds_sum", (("tenant", "acme"),))] == 7
            await confirm(controller, orders)  # met again: observed once only
            again = samples(generate_latest(metrics.registry).decode())
            assert again[("powerplane_grid_event_response_seconds_count", (("step", "cap_met"),))] == 1
        finally:
            await controller.stop()

    asyncio.run(main())
