"""The agent's power side without a stream: orders, heartbeat fields, the guard's
pass (waiting for one pass's orders to land), and local actions until reported."""

import pytest

from agents import wire
from agents.miners.fleet_driver import EmulatedFleets
from agents.site_config import parse_site_config
from agents.site_power import ORDERS_SETTLE_S, SitePowerControl
from scheduler.core.decisions import CapRunPower, SetMiningTargets
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode
from tests.builders import FakeClock

CONFIG = {
    "interconnect_cap_mw": 0.1,
    "overhead": 1.25,
    "gpu_load_w": 1000,
    "gpu_idle_w": 100,
    "gpu_backend": "fake",  # never real GPUs in tests
    "fleets": [{"fleet_id": "a2", "model": "A2", "count": 10, "ramp_down_s": 1, "ramp_up_s": 1}, {"fleet_id": "xp", "model": "S19XP", "count": 10}],
}


def control():
    clock = FakeClock(1000.0)
    config = parse_site_config(CONFIG)
    power = SitePowerControl(config, EmulatedFleets(config.fleet_models(), clock=clock), wall_clock=lambda: 1_700_000_000.5, clock=clock)
    power.follow_nodes([GpuNode("n", "", 8)])
    return power, clock


def targets(cap_w, event, **fleets):
    return SetMiningTargets("site", dict(fleets), cap_w, event)


def test_registration_inventory_and_heartbeat_fields():
    power, clock = control()
    register = wire.register("site", "tx", "0", [GpuNode("n", "", 8)], power.config, [], {}).register
    inventory = register.inventory
    assert [f.fleet_id for f in inventory.fleets] == ["a2", "xp"] and inventory.power.overhead == 1.25 and inventory.gpu_nodes[0].gpus == 8
    power.gpus.add_run("r1", 2)
    beat = wire.heartbeat([RunReport("r1", RunState.RUNNING)], power.reading(), {}).heartbeat
    assert [(r.run_id, r.state) for r in beat.runs] == [("r1", RunState.RUNNING)]
    assert beat.gpu_power_w == 800 + 2 * 900
    assert beat.measured_power_w == 800 + 2 * 900 + 2 * 250
    assert beat.meter_power_w == pytest.approx(beat.measured_power_w * 1.25)
    assert [(f.fleet_id, f.measured_w, f.target_w) for f in beat.fleets] == [("a2", 250, 250), ("xp", 250, 250)]
    assert not beat.local_actions


def test_targets_set_the_fleets_and_the_cap_and_unknown_fleets_are_ignored():
    power, clock = control()
    power.apply_targets(targets(90_000, True, a2=20_000, nope=5))
    assert power.driver.read()["a2"] == (250, 20_000) and power.cap_w == 90_000 and power.cap_event_active
    power.apply_targets(targets(0, False, xp=10_000))  # no cap given: the last one holds
    assert power.cap_w == 90_000 and not power.cap_event_active


def test_the_guard_waits_for_a_pass_orders_while_connected_but_never_when_cut_off():
    power, clock = control()
    power.gpus.add_run("r1", 8)  # 8 x 1000 W
    power.apply_targets(targets(100_000, True, a2=37_300, xp=30_100))
    clock.now += 5  # ramped up: (8000 + 67400) x 1.25 = 94.25 kW
    power.tick(True, ["r1"])
    power.apply_targets(targets(55_000, True, a2=37_300, xp=1_000))  # the pass' GPU cap is on its way
    result, _ = power.tick(True, ["r1"])
    assert not result.acted  # uncapped GPUs would not fit: (800 + 8 x 900 + 37300 + 1000) x 1.25 > 55 kW
    power.cap_run(CapRunPower("site", "r1", 0.5))
    clock.now += ORDERS_SETTLE_S
    result, _ = power.tick(True, ["r1"])
    assert not result.acted  # with the cap the targets fit: (800 + 8 x 400 + 37300 + 1000) x 1.25 < 55 kW
    power.cap_run(CapRunPower("site", "r1", 1.0))
    clock.now += 0.01
    result, _ = power.tick(False, ["r1"])  # cut off: no waiting, and the cap event floors mining
    assert result.targets_w == {"a2": 250, "xp": 250}


def test_actions_are_kept_until_a_heartbeat_carries_them_and_settled_ramps_ask_for_one():
    power, clock = control()
    power.apply_targets(targets(100_000, True, a2=37_300))
    clock.now += ORDERS_SETTLE_S
    _, now = power.tick(True, [])
    assert not now  # ramping
    clock.now += 1
    _, now = power.tick(True, [])
    assert now  # a2 reached its target: tell the scheduler at once
    result, now = power.tick(False, [])
    assert result.acted and now and len(power.pending_actions) == 1
    action = power.pending_actions[0]
    assert action.at == 1_700_000_000.5
    beat = wire.heartbeat([], power.reading(), {})
    wire.add_local_actions(beat, [action])
    (sent,) = beat.heartbeat.local_actions
    assert (sent.at.seconds, sent.at.nanos, sent.what) == (1_700_000_000, 500_000_000, action.what)
    later = power.record("something else")
    power.reported([action])
    assert power.pending_actions == [later]
