"""MinerGroup and MinerFleets (agents/miners) end to end against emulated Braiins OS
miners (agents.emulator), everything through pyasic_rs: connect finds the miners and
reports an address with none; apply curtails (pauses and power limits) and the miners'
physical power follows under the target; a hung or offline miner is reported, planned
around, and the group still meets its target (escalation); a refused command leaves its
miner stuck and reported, the others lowered to make up for it; the agent's driver
applies fleet targets over racks, re-sends a setting a miner drifted from, and reports
problems as LocalActions.

The emulator binds 127.x.y.z on ports 80 and 4028: run as root, inside a network
namespace (`unshare -n sh -c 'ip link set lo up; ...'`). Ramps, timeouts and grace
periods are shortened to keep it fast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pyasic_rs
import pytest

from agents.emulator import MinerEmulator, with_ramps
from agents.emulator.braiins import PAUSE, POWER_TARGET
from agents.miners.driver import site_fleet_driver
from agents.miners.group import MinerGroup
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from scheduler.core.decisions import SetMiningTargets
from scheduler.core.power import MINER_MODELS
from tests.integration.conftest import skip_unless_port_80_bindable

pytestmark = pytest.mark.integration

RAMP_S = 0.3
SETTLE_S = RAMP_S + 0.3
S21 = with_ramps(MINER_MODELS["S21"], RAMP_S, RAMP_S)  # 2,400-3,500 W, standby 25 W
TIMEOUT_S = 0.5  # per command and poll: a hung miner costs this much


skip_unless_port_80_bindable("127.43.255.1")


def run(coro, limit_s: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, limit_s))


def group(group_id: str, addresses: list[str], **kwargs) -> MinerGroup:
    # fast_cuts off: these tests check the split's settings (limits and pauses) as sent;
    # test_miner_fast_cuts.py checks how a cut is answered first.
    options = {"grace_s": 0.3, "retry_s": 1.0, "rediscover_s": 1.0, "fast_cuts": False, **kwargs}
    return MinerGroup(group_id, addresses, S21, command_timeout_s=TIMEOUT_S, **options)


async def emulated(count: int, base: str) -> tuple[MinerEmulator, list[str]]:
    emu = MinerEmulator()
    return emu, await emu.add(count, "S21", base, ramp_down_s=RAMP_S, ramp_up_s=RAMP_S)


def test_connect_finds_every_miner_and_reports_an_address_without_one():
    async def body():
        emu, ips = await emulated(20, "127.43.0.1")
        nobody = "127.43.0.200"
        g = group("rack-1", [*ips, nobody])
        try:
            found = await g.connect()
            assert found["found"] == ips and found["missing"] == [nobody]
            # every miner found answers (on a busy machine a first read may time out: wait for it, not on it)
            figures = await until(g, lambda f: f["answering"] == 20, timeout_s=30.0)
            assert figures["not_answering"] == [nobody]
            assert figures["measured_w"] == 21 * 3_500  # the missing address counts at rated power
            assert figures["hashrate_ths"] == pytest.approx(20 * 200)
            # An address that starts answering is found by a later read.
            (late,) = await emu.add(1, "S21", nobody)
            await asyncio.sleep(1.1)
            await g.read()
            await until(g, lambda f: f["answering"] == 21)
            assert late == nobody
        finally:
            await g.close()
            await emu.close()

    run(body())


def test_apply_curtails_with_pauses_and_limits_and_power_follows_under_the_target():
    async def body():
        emu, ips = await emulated(10, "127.43.1.1")
        g = group("rack-1", ips)
        try:
            await g.connect()
            before = time.time()
            result = await g.apply(20_000)  # all at their lowest limit would be 24 kW: two pause
            assert result["target_w"] == 20_000 and 19_990 <= result["planned_w"] <= 20_000 and result["stuck"] == []
            acks = result["acks"]
            assert all(a["ok"] and a["error"] is None and before <= a["sent_at"] <= a["acked_at"] <= time.time() for a in acks)
            assert sorted({a["action"] for a in acks}) == ["pause", "resume", "set_power_limit"]
            paused = [a["ip"] for a in acks if a["action"] == "pause"]
            assert paused == ips[:2]
            assert {a["watts"] for a in acks if a["action"] == "set_power_limit"} == {2_493}  # (20,000 - 50) / 8, whole watts
            await asyncio.sleep(SETTLE_S)
            assert emu.total_power_w(ips) == pytest.approx(result["planned_w"]) and emu.total_power_w(ips) <= 20_000
            assert [emu.target_w(ip) for ip in ips[:2]] == [25, 25]
            figures = await g.read()
            assert figures["measured_w"] == pytest.approx(result["planned_w"], abs=10) and figures["target_w"] == 20_000
            assert figures["stuck"] == [] and figures["not_answering"] == []

            again = await g.apply(20_000)  # nothing changed: nothing sent
            assert again["acks"] == []
            up = await g.apply(33_000)  # everyone running again
            assert {a["ip"] for a in up["acks"] if a["action"] == "resume"} == set(ips[:2])
            await asyncio.sleep(SETTLE_S)
            assert 32_990 <= emu.total_power_w(ips) <= 33_000
        finally:
            await g.close()
            await emu.close()

    run(body())


def test_hung_and_offline_miners_are_reported_planned_around_and_the_target_still_met():
    async def body():
        emu, ips = await emulated(10, "127.43.2.1")
        g = group("rack-1", ips)
        try:
            await g.connect()
            hung, gone = ips[0], ips[1]
            await emu.set_faults(hung, hang=True)  # hangs unseen: the group still plans to pause it
            await emu.set_faults(gone, offline=True)
            started = time.monotonic()
            result = await g.apply(20_000)
            assert time.monotonic() - started < 4 * TIMEOUT_S  # a hung miner costs one timeout per round
            failed = {a["ip"]: a["error"] for a in result["acks"] if not a["ok"]}
            assert set(failed) == {hung, gone} and "no answer within 0.5 s" in failed[hung]
            assert result["planned_w"] <= 20_000  # the second round counted both at 3,500 W
            await asyncio.sleep(SETTLE_S)
            assert emu.power_w(hung) == emu.power_w(gone) == 3_500  # they never got the pause
            assert emu.total_power_w(ips) <= 20_000  # the others went lower to make up for it
            figures = await g.read()
            assert figures["not_answering"] == [hung, gone] and figures["stuck"] == []
            assert figures["measured_w"] <= 20_000 and figures["answering"] == 8

            await emu.clear_faults(gone)  # back: its setting is sent again
            await g.read()
            await g.apply(20_000)
            await asyncio.sleep(SETTLE_S)
            assert emu.total_power_w(ips) <= 20_000
        finally:
            await g.close()
            await emu.close()

    run(body())


def test_a_refused_command_leaves_the_miner_stuck_and_the_others_make_up_for_it():
    async def body():
        emu, ips = await emulated(10, "127.43.3.1")
        g = group("rack-1", ips)
        try:
            await g.connect()
            refuser = ips[0]  # first in line to be paused
            await emu.set_faults(refuser, refuse=[PAUSE, POWER_TARGET])
            result = await g.apply(20_000)
            errors = [a["error"] for a in result["acks"] if a["ip"] == refuser]
            assert len(errors) == 1 and "400" in errors[0] and "refused" in errors[0]
            assert result["stuck"] == [refuser] and result["planned_w"] <= 20_000
            await asyncio.sleep(SETTLE_S)
            assert emu.power_w(refuser) == 3_500 and emu.total_power_w(ips) <= 20_000
            assert (await g.read())["stuck"] == [refuser]

            await emu.clear_faults(refuser)  # it takes commands again: retried, it reaches its setting
            await asyncio.sleep(1.0)
            await g.apply(20_000)
            await asyncio.sleep(SETTLE_S)
            figures = await g.read()
            assert figures["stuck"] == [] and emu.target_w(refuser) == 25
            await g.apply(20_000)  # planned for again
            await asyncio.sleep(SETTLE_S)
            assert emu.total_power_w(ips) <= 20_000 and emu.total_power_w(ips) >= 19_000
        finally:
            await g.close()
            await emu.close()

    run(body())


def test_the_agent_drives_racks_re_sends_drifted_settings_and_reports_problems():
    async def body():
        emu, ips = await emulated(20, "127.43.4.1")
        rack_1, rack_2 = ips[:10], ips[10:]
        config = parse_site_config(
            {
                "interconnect_cap_mw": 1.0,
                "fleets": [
                    {
                        "fleet_id": "s21",
                        "model": "S21",
                        "count": 20,
                        "ramp_down_s": RAMP_S,
                        "ramp_up_s": RAMP_S,
                        "groups": [
                            {"group_id": "rack-1", "miners": rack_1},
                            {"group_id": "rack-2", "miners": rack_2},
                        ],
                    },
                    {"fleet_id": "emulated", "model": "S19XP", "count": 5},
                ],
            }
        )
        driver = site_fleet_driver(config, lambda gid, addresses, model: group(gid, addresses), poll_s=0.2)
        power = SitePowerControl(config, driver)
        miners = driver.drivers[0]
        task = asyncio.create_task(driver.run())
        try:
            await until_true(lambda: miners.ready and "rack-1" in miners.status()["reads"])
            power.apply_targets(SetMiningTargets("site", {"s21": 40_000}, 900_000, False))
            await asyncio.sleep(SETTLE_S + 0.2)
            assert emu.total_power_w(ips) <= 40_000 and emu.total_power_w(rack_1) == pytest.approx(emu.total_power_w(rack_2), abs=50)
            measured, target = power.driver.read()["s21"]
            assert target == 40_000 and 39_000 <= measured <= 40_000
            beat = power.reading()
            assert [(f.fleet_id, f.target_w) for f in beat.fleets] == [("emulated", 125), ("s21", 40_000)]

            # Someone resumes a paused miner by hand: the driver pauses it again.
            paused = next(ip for ip in ips if emu.target_w(ip) == 25)
            await (await pyasic_rs.MinerFactory().get_miner(paused)).resume()
            await until_true(lambda: emu.target_w(paused) == 25 and emu.power_w(paused) == 25, timeout_s=5)

            # A rack-1 miner hangs: reported once; rack-2 is lowered to keep the fleet under its target.
            await emu.set_faults(rack_1[5], hang=True)
            await until_true(lambda: any("not answering" in line for line in miners.problems()), timeout_s=5)
            await asyncio.sleep(SETTLE_S + 0.5)
            assert emu.total_power_w(ips) <= 40_000
            power.tick(True, [])
            power.tick(True, [])
            lines = [a.what for a in power.pending_actions]
            assert lines == [f"rack-1: 1 miner not answering ({rack_1[5]}), each counted at its last reading or rated power"]
            # The fleet is cut: the fire-and-forget apply brings it down well before the next poll.
            miners.poll_s = 60.0
            await asyncio.sleep(0.3)  # let the current poll finish
            power.apply_targets(SetMiningTargets("site", {"s21": 20_000}, 900_000, False))
            await asyncio.sleep(SETTLE_S)
            assert emu.total_power_w(ips) <= 20_000
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await emu.close()

    run(body())


async def until(g: MinerGroup, predicate, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        figures = await g.read()
        if predicate(figures):
            return figures
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {figures}")
        await asyncio.sleep(0.1)


async def until_true(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def test_miners_with_a_changed_password_are_driven_with_the_site_configs_login(caplog):
    async def body():
        emu = MinerEmulator()
        ips = await emu.add(3, "S21", "127.43.6.1", ramp_down_s=RAMP_S, ramp_up_s=RAMP_S, password="not-root-9")
        without, with_login = group("rack-1", ips), group("rack-1", ips, auth=("root", "not-root-9"))
        try:
            await without.connect()  # pyasic_rs's default login (root/root) is refused
            await without.apply(3 * 2_600)
            assert (await without.read())["answering"] == 0  # every authenticated call refused
            assert [emu.target_w(ip) for ip in ips] == [3_500] * 3  # nothing reached the miners
            await with_login.connect()
            result = await with_login.apply(3 * 2_600)
            assert result["acks"] and all(a["ok"] for a in result["acks"])
            assert [emu.target_w(ip) for ip in ips] == [2_600] * 3
            assert "not-root-9" not in caplog.text
        finally:
            await without.close()
            await with_login.close()
            await emu.close()

    with caplog.at_level("DEBUG"):
        run(body())


def test_a_pause_only_fleet_on_luxos_is_curtailed_in_whole_miners():
    async def body():
        emu = MinerEmulator()
        ips = await emu.add(4, "S19XP", "127.43.7.1", ramp_down_s=RAMP_S, ramp_up_s=RAMP_S, firmware="luxos")
        xp = dataclasses.replace(with_ramps(MINER_MODELS["S19XP"], RAMP_S, RAMP_S), takes_power_limit=False)
        g = MinerGroup("lux-1", ips, xp, command_timeout_s=TIMEOUT_S, grace_s=0.3, retry_s=1.0, rediscover_s=1.0)
        try:
            found = await g.connect()
            assert found["found"] == ips and found["unexpected_model"] == {}
            result = await g.apply(2 * 3_010 + 2 * 25 + 1_000)  # room for two whole miners, not three
            assert {a["action"] for a in result["acks"]} <= {"pause", "resume"} and all(a["ok"] for a in result["acks"])
            assert sorted(a["ip"] for a in result["acks"] if a["action"] == "pause") == ips[:2]
            await asyncio.sleep(SETTLE_S)
            assert sorted(emu.power_w(ip) for ip in ips) == [25, 25, 3_010, 3_010]
            figures = await g.read()
            assert figures["measured_w"] == pytest.approx(2 * 3_010 + 2 * 25) and figures["stuck"] == []
            await g.apply(4 * 3_010)  # all back
            await asyncio.sleep(SETTLE_S)
            assert emu.total_power_w(ips) == 4 * 3_010
        finally:
            await g.close()
            await emu.close()

    run(body())


def test_a_vnish_group_logs_in_with_the_site_configs_password_and_meets_a_lower_target_in_preset_steps():
    async def body():
        emu = MinerEmulator()
        ips = await emu.add(6, "S21", "127.43.20.1", ramp_down_s=RAMP_S, ramp_up_s=RAMP_S, firmware="vnish", password="vnish-pw-3")
        config = parse_site_config(
            {
                "interconnect_cap_mw": 1.0,
                "fleets": [
                    {
                        "fleet_id": "vn",
                        "model": "S21",
                        "count": 6,
                        "groups": [{"group_id": "vnish-1", "miners": ips, "username": "admin", "password": "vnish-pw-3"}],  # VNish uses the password only
                    }
                ],
            }
        )
        login = config.miner_credentials()["vnish-1"]
        g = group("vnish-1", ips, auth=(login.username, login.password))
        try:
            found = await g.connect()
            assert found["found"] == ips and found["unexpected_model"] == {}
            result = await g.apply(17_700)  # 2,950 W each: VNish runs its 2,900 W preset
            assert result["acks"] and all(a["ok"] for a in result["acks"])
            assert {a["watts"] for a in result["acks"] if a["action"] == "set_power_limit"} == {2_950}
            await asyncio.sleep(SETTLE_S)
            assert [emu.target_w(ip) for ip in ips] == [2_900] * 6
            assert 17_700 - 6 * 100 < emu.total_power_w(ips) <= 17_700  # under the target by less than a preset step each
            figures = await g.read()
            assert figures["measured_w"] == pytest.approx(emu.total_power_w(ips)) and figures["stuck"] == []

            result = await g.apply(12_000)  # under six miners at their lowest preset (14.4 kW): two pause
            assert all(a["ok"] for a in result["acks"]) and len([a for a in result["acks"] if a["action"] == "pause"]) == 2
            await asyncio.sleep(SETTLE_S)
            assert sorted(emu.target_w(ip) for ip in ips) == [25, 25, 2_900, 2_900, 2_900, 2_900]  # (12,000 - 50) / 4 -> the 2,900 W preset
            assert emu.total_power_w(ips) <= 12_000 and (await g.read())["stuck"] == []
        finally:
            await g.close()
            await emu.close()

    run(body())
