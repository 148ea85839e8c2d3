"""The agent's session with power, end to end without Ray: a fake runner, emulated
fleets with fast ramps, and an in-process AgentService on loopback that records what
the agent sends. Targets are applied and confirmed; RunPowerCap shows in the GPU
power; a stream lost during a cap event sends mining to its floor, and the action
is reported in the first heartbeat after the agent is back; over the cap the agent
curtails the least efficient fleet by itself."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from agents.miners.fleet_driver import EmulatedFleets
from agents.run_records import RunRecord, RunStart
from agents.session import AgentSettings, SiteAgent
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from scheduler.api.v1 import agent_pb2
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode
from tests.unit.fake_scheduler import DROP, serve_fake_scheduler

CONFIG = {
    "interconnect_cap_mw": 0.1,
    "cooling": "air",
    "gpu_load_w": 1000,
    "gpu_idle_w": 100,
    "gpu_backend": "fake",  # never real GPUs in tests
    "market_node": "HB_WEST",
    "fleets": [
        {"fleet_id": "a2", "model": "A2", "count": 10, "ramp_down_s": 0.3, "ramp_up_s": 0.3},
        {"fleet_id": "xp", "model": "S19XP", "count": 10, "ramp_down_s": 0.3, "ramp_up_s": 0.3},
    ],
}
A2_MAX, XP_MAX, STANDBY = 37_300.0, 30_100.0, 250.0
IDLE_GPUS_W = 8 * 100.0


class FakeRunner:
    """The RayRunner methods the session uses; one run (4 GPUs) already running."""

    def __init__(self):
        self.submitted: list[RunStart] = []

    def inventory(self):
        return [GpuNode("n1", "virtual", 8, cpus=8)]

    def list_runs(self):
        return [RunRecord(RunReport("r1", RunState.RUNNING), gpus=4)]

    def submit(self, start):
        self.submitted.append(start)

    def stop(self, run_id):
        return True

    def status(self, run_id):
        return RunReport(run_id, RunState.RUNNING)


async def until(check, timeout_s: float = 10.0, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def fleets_of(heartbeat) -> dict[str, tuple[float, float]]:
    return {f.fleet_id: (f.measured_w, f.target_w) for f in heartbeat.fleets}


def targets(cap_w: float, event: bool, a2: float, xp: float) -> agent_pb2.PowerTargets:
    fleets = [agent_pb2.FleetPower(fleet_id="a2", target_w=a2), agent_pb2.FleetPower(fleet_id="xp", target_w=xp)]
    return agent_pb2.PowerTargets(fleets=fleets, cap_w=cap_w, cap_event_active=event, cause="test")


async def scenario():
    scheduler, server, port = await serve_fake_scheduler()
    settings = AgentSettings(
        site_id="tx-1",
        region="us",
        scheduler=f"127.0.0.1:{port}",
        token="t" * 32,
        poll_starting_s=0.05,
        poll_running_s=0.05,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        guard_period_s=0.05,
    )
    config = parse_site_config(CONFIG)
    power = SitePowerControl(config, EmulatedFleets(config.fleet_models(), period_s=0.05))
    agent = SiteAgent(settings, FakeRunner(), power)
    running = asyncio.create_task(agent.run_forever())
    try:
        # Registration carries the fleets and the power profile.
        await until(lambda: scheduler.registers, what="Register")
        inventory = scheduler.registers[0].inventory
        assert [(f.fleet_id, f.model, f.count, f.ramp_up_s) for f in inventory.fleets] == [("a2", "A2", 10, 0.3), ("xp", "S19XP", 10, 0.3)]
        assert (inventory.power.interconnect_cap_w, inventory.power.overhead, inventory.power.market_node) == (1e5, pytest.approx(1.1), "HB_WEST")

        # The first heartbeat comes at once: fleets paused, the known run at load.
        first = (await until(lambda: scheduler.heartbeats, what="a heartbeat"))[0][1]
        assert fleets_of(first) == {"a2": (STANDBY, STANDBY), "xp": (STANDBY, STANDBY)}
        assert first.gpu_power_w == IDLE_GPUS_W + 4 * 900
        assert first.measured_power_w == pytest.approx(first.gpu_power_w + 2 * STANDBY)
        assert first.meter_power_w == pytest.approx(first.measured_power_w * 1.1)

        # Targets are applied at once and confirmed; the fleets ramp to them.
        scheduler.send(power_targets=targets(1e5, True, A2_MAX, XP_MAX))
        await until(lambda: any(fleets_of(h)["a2"][1] == A2_MAX for _, h in scheduler.heartbeats), what="target acknowledged")
        full = {"a2": (pytest.approx(A2_MAX), A2_MAX), "xp": (pytest.approx(XP_MAX), XP_MAX)}
        await until(lambda: fleets_of(scheduler.heartbeats[-1][1]) == full, what="fleets at their targets")

        # A run's power cap shows in the GPU power.
        scheduler.send(run_power_cap=agent_pb2.RunPowerCap(run_id="r1", power_fraction=0.5, cause="test"))
        await until(lambda: scheduler.heartbeats[-1][1].gpu_power_w == pytest.approx(IDLE_GPUS_W + 4 * 400), what="capped GPU power")

        # The stream drops during the cap event: the agent takes mining to its floor by itself.
        scheduler.refuse = True
        scheduler.orders.put_nowait(DROP)
        await until(lambda: not agent.connected.is_set(), what="disconnect")
        floor = {"a2": (STANDBY, STANDBY), "xp": (STANDBY, STANDBY)}
        await until(lambda: power.driver.read() == floor, what="mining at its floor")
        await asyncio.sleep(0.3)
        assert power.driver.read() == floor  # held there, never raised
        assert len(power.pending_actions) == 1

        # Back: the first heartbeat of the new session reports what the agent did, once.
        scheduler.refuse = False
        await until(lambda: len(scheduler.registers) == 2, what="re-Register")
        back = await until(lambda: [h for s, h in scheduler.heartbeats if s == 2], what="a heartbeat after reconnect")
        assert [a.what for a in back[0].local_actions] == [
            "stream to the scheduler lost during a cap event: mining held at its paused floor (a2 37.3 kW -> 250 W, xp 30.1 kW -> 250 W)"
        ]
        assert back[0].local_actions[0].at.seconds > 0
        assert fleets_of(back[0]) == floor  # still at the floor until the scheduler says otherwise
        await until(lambda: len([h for s, h in scheduler.heartbeats if s == 2]) >= 3, what="more heartbeats")
        assert all(not h.local_actions for h in [h for s, h in scheduler.heartbeats if s == 2][1:])
        assert power.pending_actions == []

        # Over the cap (the cap came down): the least efficient fleet is curtailed, just enough.
        gpu_w = IDLE_GPUS_W + 4 * 400
        cap_w = (gpu_w + A2_MAX + 10_000.0) * 1.1
        scheduler.send(power_targets=targets(cap_w, True, A2_MAX, XP_MAX))
        curtailed = await until(
            lambda: [h for s, h in scheduler.heartbeats if s == 2 and any("over the cap" in a.what for a in h.local_actions)],
            what="a local action over the cap",
        )
        assert "mining curtailed least efficient first (xp 30.1 kW -> 10.0 kW)" in curtailed[0].local_actions[0].what
        assert fleets_of(scheduler.heartbeats[-1][1])["a2"][1] == A2_MAX
        assert fleets_of(scheduler.heartbeats[-1][1])["xp"][1] == pytest.approx(10_000.0)
    finally:
        agent.stop()
        await asyncio.wait_for(running, 5)
        await server.stop(None)


def test_power_targets_hold_the_line_and_local_actions_over_a_live_stream():
    asyncio.run(scenario())


def test_the_session_does_not_import_ray():
    code = "import sys, agents.session, agents.main; sys.exit(1 if 'ray' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
