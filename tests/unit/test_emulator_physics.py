"""The miner emulator's pure parts: one miner's power physics and its address plan."""

import pytest

from agents.emulator.fleet import loopback_addresses
from agents.emulator.miner_physics import MinerPhysics, clamp_power_limit, with_ramps
from scheduler.core.power import MINER_MODELS, Fleet

S21 = MINER_MODELS["S21"]  # 3,500 W rated, 2,400 W min, 25 W standby, 5 s down / 10 s up


def test_a_new_miner_hashes_at_its_stock_tune():
    miner = MinerPhysics(S21, now=0.0)
    assert miner.power_w(0.0) == S21.rated_w
    assert miner.target_w == S21.rated_w
    assert miner.hashrate_ths(0.0) == pytest.approx(S21.ths)


def test_pause_ramps_down_to_standby_within_the_ramp_time():
    miner = MinerPhysics(S21, now=0.0)
    miner.pause(10.0)
    assert miner.target_w == S21.standby_w
    swing = S21.rated_w - S21.standby_w
    assert miner.power_w(10.0 + S21.ramp_down_s / 2) == pytest.approx(S21.rated_w - swing / 2)
    assert miner.power_w(10.0 + S21.ramp_down_s) == pytest.approx(S21.standby_w)
    assert miner.hashrate_ths(10.0 + S21.ramp_down_s) == 0.0


def test_resume_ramps_back_up_at_the_up_rate():
    miner = MinerPhysics(S21, now=0.0, paused=True)
    assert miner.power_w(0.0) == S21.standby_w
    miner.resume(1.0)
    assert miner.power_w(1.0 + S21.ramp_up_s / 4) == pytest.approx(S21.standby_w + (S21.rated_w - S21.standby_w) / 4)
    assert miner.power_w(1.0 + S21.ramp_up_s) == pytest.approx(S21.rated_w)


def test_hashrate_follows_power_along_the_fleet_formula():
    miner = MinerPhysics(S21, now=0.0, power_limit_w=3000.0)
    assert miner.power_w(0.0) == 3000.0
    assert miner.hashrate_ths(0.0) == pytest.approx(Fleet("x", S21, 1).hashrate_ths(3000.0))


def test_power_limit_is_clamped_to_the_tuning_range_and_kept_while_paused():
    miner = MinerPhysics(S21, now=0.0)
    assert miner.set_power_limit(100.0, 0.0) == S21.min_w
    assert miner.set_power_limit(9000.0, 0.0) == S21.rated_w
    assert clamp_power_limit(S21, 2800.0) == 2800.0
    miner.pause(0.0)
    miner.set_power_limit(2800.0, 0.0)
    assert miner.target_w == S21.standby_w
    miner.resume(0.0)
    assert miner.target_w == 2800.0


def test_a_command_applies_from_when_it_arrives():
    miner = MinerPhysics(with_ramps(S21, ramp_down_s=1.0, ramp_up_s=1.0), now=0.0)
    miner.set_power_limit(2400.0, 5.0)  # nothing changed between 0 and 5 s
    assert miner.power_w(5.0) == S21.rated_w
    assert miner.power_w(6.0) == 2400.0


def test_ramp_overrides_leave_the_rest_of_the_model():
    fast = with_ramps(S21, ramp_down_s=0.2)
    assert (fast.ramp_down_s, fast.ramp_up_s, fast.rated_w) == (0.2, S21.ramp_up_s, S21.rated_w)
    assert with_ramps(S21) is S21


def test_addresses_stay_on_loopback_and_skip_network_and_broadcast_octets():
    assert loopback_addresses("127.1.0.254", 3) == ["127.1.0.254", "127.1.1.1", "127.1.1.2"]
    assert len(set(loopback_addresses("127.1.0.1", 2000))) == 2000
    with pytest.raises(ValueError, match="127.0.0.0/8"):
        loopback_addresses("10.0.0.1", 1)
    with pytest.raises(ValueError, match="127.0.0.0/8"):
        loopback_addresses("127.255.255.254", 3)
