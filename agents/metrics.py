"""The agent's HTTP endpoint: Prometheus metrics (`/metrics`) and the probes Kubernetes
asks (`/healthz`: the cap guard is alive; `/readyz`: the stream to the scheduler is up and
Ray answers). It runs in the agent's event loop (aiohttp), so a scrape reads the agent's
state between its passes, never beside one.

Metrics (every one labelled with the site): the stream's state, the cap the agent holds
and the power it reads (with a meter: whether it answers, and the computed figure
beside it), each GPU's power and limit (NVML, or its fake), each fleet's
measured and target power and its miners by health, each miner group's health (hottest
board and chip, slowest fan, hashboards active of expected) and the site's miners by
operating state (read every health_every_s, agents/miners/health.py), runs by state, and
how often the guard acted by itself (a stream down, or the site over its cap).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.core.meter_check import MeterSource

if TYPE_CHECKING:
    from agents.session import SiteAgent

GUARD_STALE_S = 30.0  # the guard passes every guard_period_s; silent this long, the agent is not alive


class AgentCollector(Collector):
    """Gauges and counters read from the agent's state at each scrape."""

    def __init__(self, agent: SiteAgent):
        self.agent = agent

    def collect(self) -> Iterator:
        agent, power = self.agent, self.agent.power
        site = agent.settings.site_id
        connected = GaugeMetricFamily("powerplane_agent_stream_connected", "1 while the stream to the scheduler is up.", labels=["site"])
        connected.add_metric([site], 1.0 if agent.connected.is_set() else 0.0)
        cap = GaugeMetricFamily("powerplane_agent_cap_watts", "The meter cap the agent holds the site under.", labels=["site"])
        cap.add_metric([site], power.cap_w)
        reading = power.reading()
        metered = GaugeMetricFamily("powerplane_agent_metered_watts", "The site's meter power as the agent reads it.", labels=["site"])
        metered.add_metric([site], reading.meter_w)
        meter_up = GaugeMetricFamily(
            "powerplane_agent_meter_answering", "1 while the site's meter answers; 0: the computed figure is reported (sites with a meter).", labels=["site"]
        )
        computed = GaugeMetricFamily(
            "powerplane_agent_meter_computed_watts", "IT power x overhead, beside the metered figure (sites with a meter).", labels=["site"]
        )
        if power.meter is not None:
            meter_up.add_metric([site], 1.0 if reading.meter_source == MeterSource.METER else 0.0)
            computed.add_metric([site], reading.computed_w)
        hz = GaugeMetricFamily("powerplane_agent_frequency_hz", "The grid frequency last read from the meter (sites with frequency response).", labels=["site"])
        holding = GaugeMetricFamily("powerplane_agent_frequency_holding", "1 while frequency response holds the enrolled mining paused.", labels=["site"])
        trips = CounterMetricFamily("powerplane_agent_frequency_trips", "Under-frequency trips the agent answered by itself.", labels=["site"])
        if power.frequency is not None:
            if power.frequency.hz is not None:
                hz.add_metric([site], power.frequency.hz)
            holding.add_metric([site], 1.0 if power.frequency.holding else 0.0)
            trips.add_metric([site], power.frequency.trips)
        gpu_power = GaugeMetricFamily("powerplane_agent_gpu_power_watts", "Each GPU's power draw (NVML).", labels=["site", "gpu", "model"])
        gpu_limit = GaugeMetricFamily("powerplane_agent_gpu_power_limit_watts", "Each GPU's power limit in force (NVML).", labels=["site", "gpu", "model"])
        for index, name, watts, limit in power.gpus.devices():
            gpu_power.add_metric([site, str(index), name], watts)
            gpu_limit.add_metric([site, str(index), name], limit)
        measured = GaugeMetricFamily("powerplane_agent_fleet_measured_watts", "A fleet's IT power as read.", labels=["site", "fleet"])
        target = GaugeMetricFamily("powerplane_agent_fleet_target_watts", "A fleet's IT power target.", labels=["site", "fleet"])
        for fleet in reading.fleets:
            measured.add_metric([site, fleet.fleet_id], fleet.measured_w)
            target.add_metric([site, fleet.fleet_id], fleet.target_w)
        miners = GaugeMetricFamily("powerplane_agent_miners", "Miners by health: answering, not_answering, stuck.", labels=["site", "fleet", "status"])
        for fleet_id, counts in sorted(power.miner_health().items()):
            for status, count in sorted(counts.items()):
                miners.add_metric([site, fleet_id, status], count)
        health = _group_health(site, power.driver)
        runs = GaugeMetricFamily("powerplane_agent_runs", "Runs the agent tracks, by state.", labels=["site", "state"])
        for state, count in sorted(collections.Counter(r.state.name.lower() for r in agent.tracked.values()).items()):
            runs.add_metric([site, state], count)
        guard = CounterMetricFamily("powerplane_agent_guard_actions", "Times the guard cut power by itself, by reason.", labels=["site", "reason"])
        for reason in ("stream_down", "over_cap"):
            guard.add_metric([site, reason], power.guard_actions.get(reason, 0))
        yield from (connected, cap, metered, meter_up, computed, hz, holding, trips, gpu_power, gpu_limit, measured, target, miners, *health, runs, guard)


def _group_health(site: str, driver: object) -> tuple[GaugeMetricFamily, ...]:
    """The miners' health per group (and by operating state per site) from the driver's
    latest reads; a figure no miner of a group reported is left out for that group."""
    temperature = GaugeMetricFamily(
        "powerplane_agent_miner_temperature_celsius", "A miner group's hottest board or chip sensor (sensor: board, chip).", labels=["site", "group", "sensor"]
    )
    fans = GaugeMetricFamily("powerplane_agent_miner_fans_min_rpm", "A miner group's slowest fan.", labels=["site", "group"])
    active = GaugeMetricFamily("powerplane_agent_hashboards_active", "A miner group's hashboards that hash.", labels=["site", "group"])
    expected = GaugeMetricFamily("powerplane_agent_hashboards_expected", "A miner group's hashboards, of the miners read.", labels=["site", "group"])
    states = GaugeMetricFamily(
        "powerplane_agent_miners_by_state", "Miners by operating state (unknown: not reported, not read yet, or not answering).", labels=["site", "state"]
    )
    by_state: collections.Counter[str] = collections.Counter()
    for group, figures in sorted((getattr(driver, "group_health", None) or dict)().items()):
        for sensor in ("board", "chip"):
            if figures.get(f"max_{sensor}_temperature_c") is not None:
                temperature.add_metric([site, group, sensor], figures[f"max_{sensor}_temperature_c"])
        if figures.get("min_fan_rpm") is not None:
            fans.add_metric([site, group], figures["min_fan_rpm"])
        if figures.get("miners_read"):
            active.add_metric([site, group], figures["hashboards_active"])
            expected.add_metric([site, group], figures["hashboards_expected"])
        by_state.update(figures.get("states", {}))
    for state, count in sorted(by_state.items()):
        states.add_metric([site, state], count)
    return temperature, fans, active, expected, states


def health(agent: SiteAgent, now: float | None = None) -> tuple[bool, str]:
    """Liveness: the guard passed lately (it holds the cap, connected or not)."""
    now = time.monotonic() if now is None else now
    if agent.guard_ticked_at < 0:
        return False, "the power guard has not run yet"
    age = now - agent.guard_ticked_at
    if age > max(GUARD_STALE_S, 10 * agent.settings.guard_period_s):
        return False, f"the power guard last ran {age:.0f}s ago"
    return True, "ok"


def readiness(agent: SiteAgent) -> tuple[bool, str]:
    """Ready: the stream is up and Ray answered the last time it was asked."""
    alive, why = health(agent)
    if not alive:
        return False, why
    if not agent.connected.is_set():
        return False, "not connected to the scheduler"
    if agent.ray_error is not None:
        return False, f"Ray does not answer: {agent.ray_error}"
    return True, "ok"


class AgentEndpoint:
    """/metrics, /healthz and /readyz on one port, in the agent's loop."""

    def __init__(self, agent: SiteAgent):
        self.agent = agent
        self.registry = CollectorRegistry()
        self.registry.register(AgentCollector(agent))
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, why = health(self.agent)
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ok, why = readiness(self.agent)
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the port."""
        app = web.Application()
        app.add_routes([web.get("/metrics", self._metrics), web.get("/healthz", self._healthz), web.get("/readyz", self._readyz)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port chosen for port 0
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
