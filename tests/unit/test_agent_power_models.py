"""The agent's emulated fleets (ramps on an injected clock) and its GPU power model
(on the fake NVML; the NVML layer itself: test_nvml.py)."""

import asyncio
import dataclasses

import pytest

from agents.gpu_power import GpuPower, gpu_it_power_w
from agents.miners.fleet_driver import EmulatedFleets
from scheduler.core.power import MINER_MODELS, Fleet
from tests.builders import FakeClock

S21 = dataclasses.replace(MINER_MODELS["S21"], ramp_down_s=5.0, ramp_up_s=10.0)


def fleets(clock):
    return EmulatedFleets([Fleet("a", S21, 10), Fleet("b", MINER_MODELS["S19XP"], 4)], clock=clock)


def test_fleets_start_paused_with_their_floor_as_target():
    clock = FakeClock(100.0)
    driver = fleets(clock)
    assert driver.read() == {"a": (250.0, 250.0), "b": (100.0, 100.0)}
    clock.now += 60
    assert driver.read()["a"] == (250.0, 250.0)


def test_power_ramps_up_and_down_at_the_fleet_rates():
    clock = FakeClock(100.0)
    driver = fleets(clock)
    swing = 35000.0 - 250.0
    assert driver.set_target("a", 35000.0) == 35000.0
    clock.now += 2.5  # a quarter of the 10 s ramp up
    measured, target = driver.read()["a"]
    assert target == 35000.0 and measured == pytest.approx(250.0 + swing / 4)
    clock.now += 7.5
    assert driver.read()["a"] == (pytest.approx(35000.0), 35000.0)
    driver.set_target("a", 250.0)
    clock.now += 2.5  # half of the 5 s ramp down
    assert driver.read()["a"][0] == pytest.approx(35000.0 - swing / 2)
    clock.now += 100
    assert driver.read()["a"] == (250.0, 250.0)
    assert driver.read()["b"] == (100.0, 100.0)  # untouched


def test_a_new_target_mid_ramp_starts_from_where_the_fleet_is():
    clock = FakeClock(100.0)
    driver = fleets(clock)
    driver.set_target("a", 35000.0)
    clock.now += 5.0  # half way up
    driver.set_target("a", 10000.0)  # now it ramps down from half way
    half = 250.0 + (35000.0 - 250.0) / 2
    assert driver.read()["a"] == (pytest.approx(half), 10000.0)
    clock.now += 1.0
    assert driver.read()["a"][0] == pytest.approx(half - (35000.0 - 250.0) / 5)
    clock.now += 10
    assert driver.read()["a"][0] == pytest.approx(10000.0)


def test_targets_are_clamped_to_what_a_fleet_can_draw():
    driver = fleets(FakeClock(100.0))
    assert driver.set_target("a", 0.0) == 250.0
    assert driver.set_target("a", 1e9) == 35000.0
    with pytest.raises(KeyError):
        driver.set_target("nope", 1.0)


def test_the_periodic_task_samples_the_model():
    clock = FakeClock(100.0)
    driver = EmulatedFleets([Fleet("a", S21, 10)], clock=clock, period_s=0.01)
    driver.set_target("a", 35000.0)

    async def scenario():
        task = asyncio.create_task(driver.run())
        clock.now += 10
        await asyncio.sleep(0.05)
        task.cancel()
        return driver._state["a"].measured_w

    assert asyncio.run(scenario()) == pytest.approx(35000.0)


def test_gpu_power_is_idle_plus_each_run_above_idle_at_its_cap():
    assert gpu_it_power_w(16, 1000, 150, []) == 16 * 150
    assert gpu_it_power_w(16, 1000, 150, [(8, 1.0)]) == 16 * 150 + 8 * 850
    assert gpu_it_power_w(16, 1000, 150, [(8, 1.0), (4, 0.7)]) == pytest.approx(16 * 150 + 8 * 850 + 4 * (700 - 150))
    assert gpu_it_power_w(16, 1000, 150, [(4, 0.05)]) == 16 * 150  # no lower than idle
    assert gpu_it_power_w(16, 1000, 150, [(4, 1.5)]) == 16 * 150 + 4 * 850  # no higher than load


def test_gpu_power_counts_the_runs_holding_devices_and_keeps_caps_given_before_the_start():
    gpus = GpuPower(gpu_load_w=1000, gpu_idle_w=100, backend="fake")
    gpus.total_gpus = 8
    assert gpus.set_power_fraction("r1", 0.6) is None  # the cap may come with the start order
    gpus.add_run("r1", 4)
    assert gpus.power_w() == pytest.approx(800 + 4 * 500)
    gpus.add_run("r2", 2)
    assert gpus.power_w() == pytest.approx(800 + 4 * 500 + 2 * 900)
    assert gpus.set_power_fraction("r1", 1.0) == 1.0
    assert gpus.power_w() == pytest.approx(800 + 4 * 900 + 2 * 900)
    gpus.forget("r1")
    assert gpus.power_w() == pytest.approx(800 + 2 * 900)  # its devices idle again
    gpus.forget("r2")
    assert gpus.power_w() == 800
