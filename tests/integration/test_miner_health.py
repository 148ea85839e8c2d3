"""Miners' health end to end through pyasic_rs against emulated miners (agents.emulator):
a MinerGroup's read carries its miners' hottest board and chip, slowest fan, hashboards
and operating states (Braiins OS reports `mining`/`paused`, LuxOS no state: `unknown`),
a pause shows up as a paused miner with slower fans, a silent miner as `unknown`; and
the agent's /metrics exports the figures per group.

Run as root inside a network namespace, as tests/integration/test_miner_driver.py.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agents.emulator import MinerEmulator, with_ramps
from agents.metrics import AgentCollector
from agents.miners.driver import site_fleet_driver
from agents.miners.group import MinerGroup
from agents.session import AgentSettings, SiteAgent
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from scheduler.core.power import MINER_MODELS
from tests.integration.test_miner_driver import RAMP_S, TIMEOUT_S, emulated, group, run, until, until_true
from tests.unit.test_agent_session_power import FakeRunner

pytestmark = pytest.mark.integration
HEALTH_EVERY_S = 0.4


def test_a_groups_read_carries_its_miners_health_and_follows_a_pause_and_a_silent_miner():
    async def body():
        emu, ips = await emulated(4, "127.45.0.1")
        g = group("rack-1", ips, health_every_s=HEALTH_EVERY_S)
        try:
            await g.connect()
            figures = await until(g, lambda f: f["health"]["miners_read"] == 4)
            health = figures["health"]
            assert health["states"] == {"mining": 4}
            assert health["max_board_temperature_c"] == 55.0 and health["max_chip_temperature_c"] == 65.0  # the emulator's sensors
            assert health["min_fan_rpm"] == 4_800  # 4 fans each, at 80 % at rated power
            assert health["hashboards_active"] == health["hashboards_expected"] == 4 * 3

            result = await g.apply(8_000)  # all four at their lowest limit would be 9.6 kW: one paused
            (paused,) = [a["ip"] for a in result["acks"] if a["action"] == "pause"]
            health = (await until(g, lambda f: f["health"]["states"] == {"mining": 3, "paused": 1}, timeout_s=10))["health"]
            await until(g, lambda f: f["health"]["min_fan_rpm"] < 1_300, timeout_s=10)  # the paused one's fans slow down (20 % at standby)

            await emu.set_faults(ips[1] if paused != ips[1] else ips[2], offline=True)
            health = (await until(g, lambda f: f["health"]["states"].get("unknown") == 1, timeout_s=10))["health"]
            assert health["miners_read"] == 3 and health["hashboards_expected"] == 3 * 3
        finally:
            await g.close()
            await emu.close()

    run(body())


def test_luxos_miners_report_boards_temperatures_and_fans_but_no_operating_state():
    async def body():
        emu = MinerEmulator()
        ips = await emu.add(2, "S19XP", "127.45.1.1", ramp_down_s=RAMP_S, ramp_up_s=RAMP_S, firmware="luxos")
        xp = dataclasses.replace(with_ramps(MINER_MODELS["S19XP"], RAMP_S, RAMP_S), takes_power_limit=False)
        g = MinerGroup("lux-1", ips, xp, command_timeout_s=TIMEOUT_S, health_every_s=HEALTH_EVERY_S)
        try:
            await g.connect()
            health = (await until(g, lambda f: f["health"]["miners_read"] == 2))["health"]
            assert health["states"] == {"unknown": 2}  # pyasic_rs reads no operating state from LuxOS
            assert health["hashboards_active"] == health["hashboards_expected"] == 2 * 3
            assert 35 < health["max_board_temperature_c"] < health["max_chip_temperature_c"] <= 65
            assert health["min_fan_rpm"] > 0
        finally:
            await g.close()
            await emu.close()

    run(body())


def test_the_agents_metrics_export_each_groups_health_and_the_miners_by_state():
    async def body():
        emu, ips = await emulated(6, "127.45.2.1")
        config = parse_site_config(
            {
                "interconnect_cap_mw": 1.0,
                "fleets": [
                    {
                        "fleet_id": "s21",
                        "model": "S21",
                        "count": 6,
                        "ramp_down_s": RAMP_S,
                        "ramp_up_s": RAMP_S,
                        "groups": [{"group_id": "rack-1", "miners": ips[:4]}, {"group_id": "rack-2", "miners": ips[4:]}],
                    }
                ],
            }
        )
        driver = site_fleet_driver(config, lambda gid, addresses, model: group(gid, addresses, health_every_s=HEALTH_EVERY_S), poll_s=0.1)
        power = SitePowerControl(config, driver)
        agent = SiteAgent(AgentSettings(site_id="tx-1", region="us", scheduler="127.0.0.1:1", token="t" * 32), FakeRunner(), power)
        registry = CollectorRegistry()
        registry.register(AgentCollector(agent))
        task = asyncio.create_task(driver.run())
        try:
            await until_true(lambda: sum(h["miners_read"] for h in driver.group_health().values()) == 6)
            samples = {
                (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "site"))): s.value
                for family in text_string_to_metric_families(generate_latest(registry).decode())
                for s in family.samples
                if s.name.startswith(("powerplane_agent_miner_", "powerplane_agent_hashboards_", "powerplane_agent_miners_by_state"))
            }
            assert samples == {
                ("powerplane_agent_miner_temperature_celsius", (("group", "rack-1"), ("sensor", "board"))): 55.0,
                ("powerplane_agent_miner_temperature_celsius", (("group", "rack-1"), ("sensor", "chip"))): 65.0,
                ("powerplane_agent_miner_temperature_celsius", (("group", "rack-2"), ("sensor", "board"))): 55.0,
                ("powerplane_agent_miner_temperature_celsius", (("group", "rack-2"), ("sensor", "chip"))): 65.0,
                ("powerplane_agent_miner_fans_min_rpm", (("group", "rack-1"),)): 4_800.0,
                ("powerplane_agent_miner_fans_min_rpm", (("group", "rack-2"),)): 4_800.0,
                ("powerplane_agent_hashboards_active", (("group", "rack-1"),)): 12.0,
                ("powerplane_agent_hashboards_active", (("group", "rack-2"),)): 6.0,
                ("powerplane_agent_hashboards_expected", (("group", "rack-1"),)): 12.0,
                ("powerplane_agent_hashboards_expected", (("group", "rack-2"),)): 6.0,
                ("powerplane_agent_miners_by_state", (("state", "mining"),)): 6.0,
            }
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await emu.close()

    run(body())
