"""Frequency response end to end on loopback: pymodbus's server as the site's meter
(agents/emulator/meter.py), emulated Braiins OS miners (agents.emulator) driven through
pyasic_rs by the agent's own driver. The frequency register drops below the trip: the
enrolled fleet's miners are paused, the other fleet's are not; the frequency comes back
at once, yet the pause holds for hold_s; then the miners resume, and both actions are
in the heartbeat the agent sends next. Emulated miners bind 127.x.y.z ports 80 and 4028:
run as root inside `unshare -n`. Hold, restore and ramps are shortened to keep it fast."""

from __future__ import annotations

import asyncio

import pytest

from agents import wire
from agents.emulator import MinerEmulator
from agents.emulator.meter import MeterServer
from agents.miners.driver import site_fleet_driver
from agents.miners.group import MinerGroup
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from scheduler.core.decisions import SetMiningTargets
from tests.integration.conftest import skip_unless_port_80_bindable
from tests.unit.test_agent_session_power import until

pytestmark = pytest.mark.integration
skip_unless_port_80_bindable("127.44.255.1")
HOLD_S = 0.6


def site(meter_port: int, ffr: list[str], other: list[str]) -> dict:
    fleet = {"model": "S21", "ramp_down_s": 0.3, "ramp_up_s": 0.3}
    return {
        "interconnect_cap_mw": 1.0,
        "gpu_backend": "fake",
        "fleets": [{"fleet_id": "ffr", "count": len(ffr), "miners": ffr, **fleet}, {"fleet_id": "other", "count": len(other), "miners": other, **fleet}],
        "meter": {"host": "127.0.0.1", "port": meter_port, "power": {"address": 0}, "frequency": {"address": 10}, "timeout_s": 0.5, "poll_s": 0.2},
        "frequency_response": {"trip_hz": 59.7, "reset_hz": 59.9, "hold_s": HOLD_S, "restore_s": 0.1, "poll_s": 0.02, "fleets": ["ffr"]},
    }


def test_a_trip_pauses_the_enrolled_fleet_only_holds_restores_and_is_reported():
    async def body():
        emu = MinerEmulator()
        ffr = await emu.add(4, "S21", "127.44.0.1", ramp_down_s=0.3, ramp_up_s=0.3)
        other = await emu.add(4, "S21", "127.44.1.1", ramp_down_s=0.3, ramp_up_s=0.3)
        probe = parse_site_config(site(1, ffr, other)).meter
        meter = MeterServer(probe)
        port = await meter.start("127.0.0.1", 0)
        await meter.set_frequency(60.0)
        config = parse_site_config(site(port, ffr, other))

        def group(group_id, addresses, model):
            return MinerGroup(group_id, addresses, model, command_timeout_s=0.5, grace_s=0.3, retry_s=1.0, rediscover_s=1.0)

        power = SitePowerControl(config, site_fleet_driver(config, group_factory=group, poll_s=0.2))
        tasks = [asyncio.create_task(c) for c in power.background()]
        paused = lambda ips: [emu.miner(ip).physics.paused for ip in ips]  # noqa: E731
        try:
            await until(lambda: power.driver.ready and power.frequency.hz == 60.0, what="miners connected and the frequency read")
            power.apply_targets(SetMiningTargets("s", {"ffr": 4 * 3500.0, "other": 4 * 3500.0}, 1e6, False, "test"))
            await until(lambda: not any(paused(ffr + other)), what="every miner running")

            await meter.set_frequency(59.55)
            await until(lambda: all(paused(ffr)), timeout_s=5, what="the enrolled miners paused")
            assert not any(paused(other))  # only the enrolled fleet
            tripped = power.frequency.clock()
            await meter.set_frequency(60.0)  # back at once: the hold still runs
            await until(lambda: not power.frequency.holding, timeout_s=5, what="the restore")
            assert power.frequency.clock() - tripped >= HOLD_S - 0.05
            await until(lambda: not any(paused(ffr)), timeout_s=5, what="the enrolled miners resumed")

            beat = wire.heartbeat([], power.reading(), {})
            wire.add_local_actions(beat, power.pending_actions)
            said = [a.what for a in beat.heartbeat.local_actions]
            assert any("under-frequency: 59.550 Hz" in w for w in said) and any("frequency restored" in w for w in said)
            assert power.frequency.trips == 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await meter.stop()
            await emu.close()

    asyncio.run(asyncio.wait_for(body(), 30))
