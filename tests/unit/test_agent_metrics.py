"""The agent's HTTP endpoint (agents/metrics.py) on a real agent session without Ray: a
fake runner, emulated fleets, the fake NVML and an in-process scheduler on loopback.
/healthz answers 503 until the cap guard has run; /readyz wants the stream up and Ray
answering; /metrics shows the cap the agent holds, every GPU's power and limit, the
fleets, and counts the guard acting by itself when the stream drops in a cap event."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agents.metrics import AgentEndpoint
from agents.miners.fleet_driver import EmulatedFleets
from agents.session import AgentSettings, SiteAgent
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from tests.unit.fake_scheduler import DROP, serve_fake_scheduler
from tests.unit.test_agent_session_power import CONFIG, XP_MAX, FakeRunner, targets, until


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


async def get(http: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def scenario():
    scheduler, server, port = await serve_fake_scheduler()
    settings = AgentSettings(
        site_id="tx-1", region="us", scheduler=f"127.0.0.1:{port}", token="t" * 32, poll_running_s=0.05, backoff_initial_s=0.05, backoff_max_s=0.2, guard_period_s=0.05
    )
    config = parse_site_config(CONFIG)
    power = SitePowerControl(config, EmulatedFleets(config.fleet_models(), period_s=0.05))
    agent = SiteAgent(settings, FakeRunner(), power)
    endpoint = AgentEndpoint(agent)
    metrics_port = await endpoint.start("127.0.0.1", 0)
    async with aiohttp.ClientSession() as http:
        assert (await get(http, metrics_port, "/healthz"))[0] == 503  # the guard has not run yet
        assert (await get(http, metrics_port, "/readyz"))[0] == 503
        running = asyncio.create_task(agent.run_forever())
        try:
            await until(lambda: agent.connected.is_set(), what="connected")
            scheduler.send(power_targets=targets(1e5, True, 20_000.0, XP_MAX))
            await until(lambda: power.cap_w == 1e5 and power.reading().fleets[0].target_w == 20_000.0, what="the cap and targets taken")
            status, text = await get(http, metrics_port, "/healthz")
            assert (status, text.strip()) == (200, "ok")
            assert (await get(http, metrics_port, "/readyz"))[0] == 200

            got = samples((await get(http, metrics_port, "/metrics"))[1])
            site = ("site", "tx-1")
            assert got[("powerplane_agent_stream_connected", (site,))] == 1
            assert got[("powerplane_agent_cap_watts", (site,))] == 1e5
            gpus = {labels: v for (name, labels), v in got.items() if name == "powerplane_agent_gpu_power_limit_watts"}
            assert len(gpus) == 8 and set(gpus.values()) == {1000.0}  # the fake NVML's default limit: gpu_load_w
            assert got[("powerplane_agent_fleet_target_watts", (("fleet", "a2"), site))] == 20_000.0
            assert got[("powerplane_agent_runs", (site, ("state", "running")))] == 1
            assert got[("powerplane_agent_guard_actions_total", (("reason", "stream_down"), site))] == 0

            # The stream drops during the cap event: the guard takes mining to its floor by itself.
            scheduler.refuse = True
            scheduler.orders.put_nowait(DROP)
            await until(lambda: power.guard_actions["stream_down"] >= 1, what="the guard acting")
            status, text = await get(http, metrics_port, "/readyz")
            assert status == 503 and "not connected" in text
            assert (await get(http, metrics_port, "/healthz"))[0] == 200  # alive: it holds the cap by itself
            got = samples((await get(http, metrics_port, "/metrics"))[1])
            assert got[("powerplane_agent_stream_connected", (site,))] == 0
            assert got[("powerplane_agent_guard_actions_total", (("reason", "stream_down"), site))] >= 1
        finally:
            agent.stop()
            await asyncio.wait_for(running, 5)
            await endpoint.close()
            await server.stop(None)


def test_the_agent_serves_metrics_and_probes_that_follow_its_state():
    asyncio.run(scenario())

