"""The names of every metric a real scheduler and a real agent export, for the tests that
check what is built on them (the Grafana dashboard, the alert rules, the docs): each
registry is built on a small live state and read through the Prometheus text format, so a
name that is renamed or dropped in the code is missing here too. Not a test module."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def names_in(text: str) -> set[str]:
    """The series names a scrape gives Prometheus: `x_total` for a counter (never bare `x`),
    `x`, `x_bucket`, `x_sum` and `x_count` for a histogram, the name itself otherwise."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name + "_total" if family.type == "counter" else family.name)
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        names.update(sample.name for sample in family.samples)
    return names


async def _scheduler_scrape(workdir: Path) -> str:
    from scheduler.core.grid import GridEvent, GridEventKind
    from scheduler.core.sites import GpuNode
    from scheduler.server.config import SchedulerConfig
    from scheduler.server.controller import Controller
    from scheduler.server.metrics import SchedulerMetrics
    from scheduler.store.sqlite import SqliteStore
    from tests.builders import NOW, FakeClock, a_job, a_site_power
    from tests.unit.agent_script import confirm, drain

    power = a_site_power("tx-1").cap_mw(7).with_miners("S19XP", 1000, "s19").with_gpus(8).build()
    config = SchedulerConfig(regions=["us"], sites={"tx-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200)
    controller = Controller(SqliteStore(workdir / "pp.db"), config, FakeClock())
    await controller.start(loops=False)
    try:
        metrics = SchedulerMetrics(controller)
        session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], power)
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        await controller.submit("acme", "r1", a_job().training(gpus=8).in_regions("us").build().spec)
        await controller.post_grid_event(GridEvent("cut", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 600, site_id="tx-1", cap_w=5e6))
        controller.timings("schedule", 0.001)
        return generate_latest(metrics.registry).decode()
    finally:
        await controller.stop()


def _agent_scrape() -> str:
    from prometheus_client import CollectorRegistry

    from agents.metrics import AgentCollector
    from agents.miners.fleet_driver import EmulatedFleets
    from agents.session import AgentSettings, SiteAgent
    from agents.site_config import parse_site_config
    from agents.site_power import SitePowerControl
    from tests.unit.test_agent_session_power import CONFIG, FakeRunner

    config = parse_site_config(CONFIG)
    power = SitePowerControl(config, EmulatedFleets(config.fleet_models()))
    power.gpus.total_gpus = 8
    agent = SiteAgent(AgentSettings(site_id="tx-1", region="us", scheduler="127.0.0.1:1", token="t" * 32), FakeRunner(), power)
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent))
    return generate_latest(registry).decode()


@functools.cache
def exported_metric_names() -> frozenset[str]:
    """Every metric name the scheduler and an agent expose (no network: nothing listens)."""
    with tempfile.TemporaryDirectory(prefix="powerplane-metrics-") as workdir:
        scheduler_text = asyncio.run(_scheduler_scrape(Path(workdir)))
    return frozenset(names_in(scheduler_text) | names_in(_agent_scrape()))
