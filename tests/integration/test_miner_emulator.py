"""The miner emulator judged by pyasic_rs itself: what pyasic_rs 0.8.6 identifies,
reads and commands on the emulated miners must be what a real Braiins OS 25.07 (or,
at the end, VNish 1.2.7) Antminer would give, and must match the emulator's physics.

Every test talks to the miners only through pyasic_rs (the emulator's own API is
used to read the physical truth and to inject faults). The miners bind 127.x.y.z on
ports 80 and 4028: run as root, inside a network namespace in CI
(`unshare -n sh -c 'ip link set lo up; ...'`). Ramps are shortened to keep it fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyasic_rs
import pytest
from pyasic_rs.data import HashRateUnit

from agents.emulator import MinerEmulator, vnish
from agents.emulator.braiins import PAUSE, POWER_TARGET
from scheduler.core.power import MINER_MODELS, Fleet
from tests.integration.conftest import skip_unless_port_80_bindable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
S21, S19XP = MINER_MODELS["S21"], MINER_MODELS["S19XP"]
RAMP_S = 0.4  # both directions, for every test fleet
SETTLE_S = RAMP_S + 0.25

# What pyasic_rs 0.8.6 says a Braiins OS 25.07 miner can do (its BraiinsV2507 backend).
BRAIINS_2507_SUPPORTS = {
    "supports_change_password": True,
    "supports_check_firmware_update": False,
    "supports_factory_reset": False,
    "supports_fan_config": False,
    "supports_pause": True,
    "supports_pools_config": True,
    "supports_prepare_firmware": False,
    "supports_presets": False,
    "supports_read_logs": True,
    "supports_restart": True,
    "supports_restore_stock_os": False,
    "supports_resume": True,
    "supports_scaling_config": False,
    "supports_set_fault_light": True,
    "supports_set_hashboards_enabled": True,
    "supports_set_power_limit": True,
    "supports_set_tuning_percent": False,
    "supports_temperature_config": False,
    "supports_timezone_config": True,
    "supports_tuning_config": False,
    "supports_upgrade_firmware": False,
}


skip_unless_port_80_bindable("127.1.255.1")


def run(coro, limit_s: float = 25.0):
    """Run one test's coroutine; a test that would hang fails instead."""
    return asyncio.run(asyncio.wait_for(coro, limit_s))


async def emulator(count: int, base: str, model: str = "S21", **kwargs) -> tuple[MinerEmulator, list[str]]:
    emu = MinerEmulator()
    ips = await emu.add(count, model, base, ramp_down_s=RAMP_S, ramp_up_s=RAMP_S, **kwargs)
    return emu, ips


async def identified(ip: str):
    miner = await pyasic_rs.MinerFactory().get_miner(ip)
    assert miner is not None, f"pyasic_rs did not identify {ip}"
    return miner


def ths(hashrate) -> float:
    """A pyasic_rs HashRate in TH/s."""
    return float(hashrate.into_unit(HashRateUnit.TH))


def expected_ths(model, watts: float) -> float:
    return Fleet("one", model, 1).hashrate_ths(watts)


def test_pyasic_identifies_each_emulated_miner_as_braiins_on_antminer():
    async def body():
        emu, s21s = await emulator(3, "127.42.0.1")
        try:
            s19s = await emu.add(2, "S19XP", "127.42.1.1")
            found = await pyasic_rs.MinerFactory.from_range("127.42.0.1-5").with_range("127.42.1.1-5").scan()
            by_ip = {str(m.ip): m for m in found}
            assert set(by_ip) == set(s21s + s19s)  # and nothing where no miner is
            for ip in s21s + s19s:
                miner = by_ip[ip]
                assert (miner.make, miner.firmware) == ("Antminer", "Braiins")
                assert miner.model == ("S21" if ip in s21s else "S19XP")
                assert miner.expected_hashboards == 3
                assert miner.expected_chips == 3 * (108 if ip in s21s else 110)
            assert await pyasic_rs.MinerFactory().get_miner("127.42.0.9") is None
        finally:
            await emu.close()

    run(body())


def test_get_data_wattage_and_hashrate_match_the_physics():
    async def body():
        emu, (ip,) = await emulator(1, "127.42.2.1", power_limit_w=3000)
        try:
            miner = await identified(ip)
            data = await miner.get_data()
            true_w = emu.power_w(ip)
            assert true_w == 3000
            assert data.wattage == pytest.approx(true_w, abs=0.5)
            assert ths(data.hashrate) == pytest.approx(expected_ths(S21, 3000), rel=1e-6)
            assert ths(data.expected_hashrate) == pytest.approx(S21.ths)
            assert data.is_mining is True
            assert data.tuning_target.watts == 3000
            assert data.tuning_capabilities.power.minimum.watts == S21.min_w
            assert data.tuning_capabilities.power.maximum.watts == S21.rated_w
            assert [b.working_chips for b in data.hashboards] == [108, 108, 108]
            board_ths = sum(ths(b.hashrate) for b in data.hashboards)
            assert board_ths == pytest.approx(expected_ths(S21, 3000), rel=1e-6)
            miner_row = emu.miner(ip)
            assert (data.mac, data.hostname, data.serial_number) == (miner_row.mac, miner_row.hostname, miner_row.serial)
            assert data.firmware_version.endswith("25.07-plus")
            assert await miner.get_wattage() == pytest.approx(emu.power_w(ip), abs=0.5)
            assert ths(await miner.get_hashrate()) == pytest.approx(emu.hashrate_ths(ip), rel=1e-6)
        finally:
            await emu.close()

    run(body())


def test_pause_then_resume_change_real_power_after_the_ramp():
    async def body():
        emu, (ip,) = await emulator(1, "127.42.3.1")
        try:
            miner = await identified(ip)
            assert await miner.pause() is True
            assert emu.target_w(ip) == S21.standby_w
            await asyncio.sleep(SETTLE_S)
            assert emu.power_w(ip) == S21.standby_w
            assert await miner.get_wattage() == S21.standby_w
            assert ths(await miner.get_hashrate()) == 0.0
            assert await miner.get_is_mining() is False
            assert await miner.get_operating_state() == pyasic_rs.OperatingState.Paused()

            assert await miner.resume() is True
            assert emu.target_w(ip) == S21.rated_w
            await asyncio.sleep(SETTLE_S)
            assert emu.power_w(ip) == S21.rated_w
            assert await miner.get_wattage() == S21.rated_w
            assert ths(await miner.get_hashrate()) == pytest.approx(S21.ths)
            assert await miner.get_is_mining() is True
        finally:
            await emu.close()

    run(body())


def test_set_power_limit_sets_the_target_and_power_follows_at_the_ramp_rate():
    async def body():
        emu, (ip,) = await emulator(1, "127.42.4.1", model="S19XP")
        try:
            miner = await identified(ip)
            start_w = emu.power_w(ip)
            t0 = time.monotonic()
            assert await miner.set_power_limit(2500) is True
            early = await miner.get_wattage()
            elapsed = time.monotonic() - t0
            assert emu.target_w(ip) == 2500
            down_rate = (S19XP.rated_w - S19XP.standby_w) / RAMP_S
            assert max(2500, start_w - down_rate * elapsed) - 1 <= early <= start_w  # on its way, not jumped
            await asyncio.sleep(SETTLE_S)
            assert await miner.get_wattage() == 2500
            assert ths(await miner.get_hashrate()) == pytest.approx(expected_ths(S19XP, 2500), rel=1e-6)
            assert (await miner.get_tuning_target()).watts == 2500

            assert await miner.set_power_limit(500) is True  # below the tuning range: the floor
            assert emu.target_w(ip) == S19XP.min_w
            assert await miner.set_power_limit(9000) is True  # above: the stock tune
            assert emu.target_w(ip) == S19XP.rated_w
        finally:
            await emu.close()

    run(body())


def test_supports_flags_are_what_braiins_os_2507_would_say():
    async def body():
        emu, (ip,) = await emulator(1, "127.42.5.1")
        try:
            miner = await identified(ip)
            flags = {name: getattr(miner, name) for name in dir(miner) if name.startswith("supports_")}
            assert flags == BRAIINS_2507_SUPPORTS
        finally:
            await emu.close()

    run(body())


def test_a_miner_that_stops_answering_is_reported_as_not_answering():
    async def body():
        emu, (ip, other) = await emulator(2, "127.42.6.1")
        try:
            miner = await identified(ip)
            assert await miner.get_wattage() == S21.rated_w  # logged in, answering
            await emu.set_faults(ip, hang=True)
            t0 = time.monotonic()
            factory = pyasic_rs.MinerFactory().with_identification_timeout_secs(1)
            watts, paused, rediscovered = await asyncio.gather(miner.get_wattage(), miner.pause(), factory.get_miner(ip), return_exceptions=True)
            assert time.monotonic() - t0 < 10  # pyasic_rs's own request timeout (5 s), not forever
            assert watts is None
            assert isinstance(paused, RuntimeError)
            assert rediscovered is None
            assert await (await identified(other)).get_wattage() == S21.rated_w  # the others still answer

            await emu.set_faults(ip, hang=False)
            assert await miner.get_wattage() == S21.rated_w
            assert emu.target_w(ip) == S21.rated_w  # the pause sent while it hung was never carried out
        finally:
            await emu.close()

    run(body())


def test_a_slow_miner_answers_late_and_an_offline_one_not_at_all():
    async def body():
        emu, (slow, gone) = await emulator(2, "127.42.7.1")
        try:
            slow_miner, gone_miner = await identified(slow), await identified(gone)
            await emu.set_faults(slow, delay_s=0.5)
            t0 = time.monotonic()
            assert await slow_miner.get_wattage() == S21.rated_w
            assert time.monotonic() - t0 >= 0.5

            await emu.set_faults(gone, offline=True)
            assert await gone_miner.get_wattage() is None
            assert await pyasic_rs.MinerFactory().get_miner(gone) is None
            await emu.set_faults(gone, offline=False)
            assert await gone_miner.get_wattage() == S21.rated_w
        finally:
            await emu.close()

    run(body())


def test_a_refused_command_surfaces_as_an_error_and_changes_nothing():
    async def body():
        emu, (ip,) = await emulator(1, "127.42.8.1")
        try:
            miner = await identified(ip)
            await emu.set_faults(ip, refuse=[PAUSE, POWER_TARGET])
            with pytest.raises(RuntimeError, match="400"):
                await miner.pause()
            with pytest.raises(RuntimeError, match="400"):
                await miner.set_power_limit(2600)
            assert emu.target_w(ip) == S21.rated_w
            assert await miner.get_wattage() == S21.rated_w  # reads still work
            await emu.clear_faults(ip)
            assert await miner.pause() is True
        finally:
            await emu.close()

    run(body())


def test_the_command_line_hosts_miners_pyasic_finds():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "agents.emulator", "--count", "3", "--model", "S19XP", "--base", "127.42.9.1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert '"event": "ready"' in ready, ready + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")

        async def body():
            found = await pyasic_rs.MinerFactory.from_range("127.42.9.1-4").scan()
            assert sorted((str(m.ip), m.model, m.firmware) for m in found) == [(f"127.42.9.{i}", "S19XP", "Braiins") for i in (1, 2, 3)]

        run(body())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


# ---- VNish 1.2.7 (agents.emulator.vnish): power limit in preset steps, and pause ----

# What pyasic_rs 0.8.6 says a VNish 1.2.x miner can do (its VnishV120 backend): the
# agent's levers are all there; the limit is taken in the miner's preset steps.
VNISH_LEVERS = {"supports_set_power_limit": True, "supports_pause": True, "supports_resume": True, "supports_presets": True}


def test_pyasic_identifies_reads_limits_and_pauses_an_emulated_vnish_miner():
    async def body():
        emu = MinerEmulator()
        s21s = await emu.add(2, "S21", "127.42.20.1", ramp_down_s=RAMP_S, ramp_up_s=RAMP_S, firmware="vnish", power_limit_w=3_050)
        (xp,) = await emu.add(1, "S19XP", "127.42.20.10", firmware="vnish")
        try:
            found = await pyasic_rs.MinerFactory.from_range("127.42.20.1-10").scan()
            assert sorted((str(m.ip), m.make, m.model, m.firmware) for m in found) == sorted(
                [(s21s[0], "Antminer", "S21", "VNish"), (s21s[1], "Antminer", "S21", "VNish"), (xp, "Antminer", "S19XP", "VNish")]
            )
            ip = s21s[0]
            miner = await identified(ip)
            assert {name: getattr(miner, name) for name in VNISH_LEVERS} == VNISH_LEVERS
            assert (miner.expected_hashboards, miner.expected_chips) == (3, 3 * 108)
            assert [p.name for p in await miner.get_presets()] == [str(w) for w in range(2_400, 3_501, 100)]

            # It started on the preset under 3,050 W; every reading is the physics'.
            data = await miner.get_data()
            assert emu.power_w(ip) == 3_000 and data.wattage == 3_000
            assert ths(data.hashrate) == pytest.approx(expected_ths(S21, 3_000), rel=1e-6)
            assert ths(data.expected_hashrate) == pytest.approx(S21.ths)
            assert data.tuning_target.preset_name == "3000" and data.is_mining is True
            assert [b.working_chips for b in data.hashboards] == [108, 108, 108] and all(b.active for b in data.hashboards)
            row = emu.miner(ip)
            assert (data.mac, data.hostname, data.serial_number, data.firmware_version) == (row.mac, row.hostname, row.serial, "1.2.7")
            assert [f.rpm for f in data.fans] == [round(6_000 * (0.2 + 0.6 * 3_000 / 3_500))] * 4  # slower below rated power

            # set_power_limit selects the highest preset at or under the watts asked.
            assert await miner.set_power_limit(2_950) is True
            assert emu.target_w(ip) == 2_900
            await asyncio.sleep(SETTLE_S)
            assert await miner.get_wattage() == 2_900
            assert ths(await miner.get_hashrate()) == pytest.approx(expected_ths(S21, 2_900), rel=1e-6)
            assert (await miner.get_tuning_target()).preset_name == "2900"
            assert await miner.set_power_limit(1_000) is False  # under every preset: nothing set
            assert emu.target_w(ip) == 2_900

            assert await miner.pause() is True
            await asyncio.sleep(SETTLE_S)
            assert emu.power_w(ip) == S21.standby_w and await miner.get_wattage() == S21.standby_w
            assert ths(await miner.get_hashrate()) == 0.0 and await miner.get_is_mining() is False
            assert await miner.get_operating_state() == pyasic_rs.OperatingState.Stopped()  # VNish's "stopped"
            assert await miner.resume() is True
            await asyncio.sleep(SETTLE_S)
            assert await miner.get_wattage() == 2_900 and await miner.get_operating_state() == pyasic_rs.OperatingState.Mining()
        finally:
            await emu.close()

    run(body())


def test_vnish_unlocks_with_the_password_set_auth_gives_and_refusals_change_nothing():
    async def body():
        emu = MinerEmulator()
        ip, other = await emu.add(2, "S21", "127.42.21.1", ramp_down_s=RAMP_S, ramp_up_s=RAMP_S, firmware="vnish", password="not-admin-5")
        try:
            miner = await identified(ip)  # identification needs no login
            assert await miner.get_wattage() is None  # pyasic_rs's default unlock ("admin") is refused
            assert await miner.pause() is False and emu.target_w(ip) == S21.rated_w
            miner.set_auth("ignored-by-vnish", "not-admin-5")  # VNish has no user: only the password is sent
            assert await miner.get_wattage() == S21.rated_w

            await emu.set_faults(ip, refuse=[vnish.STOP, vnish.SETTINGS])
            assert await miner.pause() is False  # pyasic_rs answers false for a refused stop
            with pytest.raises(RuntimeError, match="500"):
                await miner.set_power_limit(2_600)
            assert emu.target_w(ip) == S21.rated_w and await miner.get_wattage() == S21.rated_w
            await emu.clear_faults(ip)
            assert await miner.set_power_limit(2_600) is True and emu.target_w(ip) == 2_600

            with_token = await identified(other)
            with_token.set_token("not-a-token")
            assert await with_token.get_wattage() is None  # an unknown bearer token is refused (401)
            emu.miner(other).tokens.add("issued-earlier")  # as if from an unlock, or VNish's API key page
            with_token.set_token("issued-earlier")
            assert await with_token.get_wattage() == S21.rated_w
        finally:
            await emu.close()

    run(body())


def test_the_command_line_hosts_vnish_miners_and_its_status_endpoint_follows_them():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    status = "127.42.22.250:8080"
    cmd = [sys.executable, "-m", "agents.emulator", "--count", "2", "--firmware", "vnish", "--base", "127.42.22.1", "--status-listen", status]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert '"firmware": "vnish"' in ready, ready + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")

        async def body():
            found = await pyasic_rs.MinerFactory.from_range("127.42.22.1-3").scan()
            assert sorted((str(m.ip), m.model, m.firmware) for m in found) == [(f"127.42.22.{i}", "S21", "VNish") for i in (1, 2)]
            since = time.time()
            paused = min(found, key=lambda m: str(m.ip))
            assert await paused.pause() is True  # the default password, admin, unlocks it
            commands = await asyncio.to_thread(get_json, f"http://{status}/commands?since={since}")
            assert commands["count"] == 1 and list(commands["first"]) == ["127.42.22.1"]
            targets = (await asyncio.to_thread(get_json, f"http://{status}/targets"))["targets"]
            assert targets == {"127.42.22.1": S21.standby_w, "127.42.22.2": S21.rated_w}

        run(body())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())
