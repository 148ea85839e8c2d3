"""MinerFleets (agents/miners/driver.py) over fake groups, no sockets: targets applied
at once once connected and split over groups by their floors, readings summed, problems
listed one line each and recorded by the agent once per change, a failing group
reported and its last figures kept."""

from __future__ import annotations

import asyncio

import pytest

from agents.miners.driver import MinerFleets, MinerFleetSpec
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from scheduler.core.power import MINER_MODELS, Fleet

S21 = MINER_MODELS["S21"]


class FakeGroup:
    """A group that answers from fixed figures and records what it was told."""

    def __init__(self, group_id: str, addresses: list[str], model) -> None:
        self.group_id, self.addresses, self.model = group_id, addresses, model
        self.applied: list[float] = []
        self.silent: list[str] = []
        self.stuck: list[str] = []
        self.fail: str | None = None
        self.connects = 0
        self.connect_fails = 0

    async def connect(self) -> dict:
        self.connects += 1
        if self.connects <= self.connect_fails:
            raise RuntimeError("not up yet")
        return {"found": self.addresses[len(self.silent) :], "missing": list(self.silent)}

    async def apply(self, target_w: float) -> dict:
        if self.fail:
            raise RuntimeError(self.fail)
        self.applied.append(target_w)
        return {"target_w": target_w, "planned_w": target_w, "acks": [], "stuck": list(self.stuck)}

    async def read(self) -> dict:
        if self.fail:
            raise RuntimeError(self.fail)
        n = len(self.addresses)
        silent_w = len(self.silent) * self.model.rated_w
        return {
            "measured_w": 1_000.0 * n,
            "hashrate_ths": 0.0,
            "target_w": self.applied[-1] if self.applied else None,
            "answering": n - len(self.silent),
            "not_answering": list(self.silent),
            "stuck": list(self.stuck),
            "floor_w": silent_w + (n - len(self.silent)) * self.model.standby_w,
            "max_w": n * self.model.rated_w,
        }


def fleets() -> tuple[MinerFleets, dict[str, FakeGroup]]:
    made: dict[str, FakeGroup] = {}

    def factory(group_id, addresses, model):
        made[group_id] = FakeGroup(group_id, addresses, model)
        return made[group_id]

    spec = MinerFleetSpec(
        Fleet("s21", S21, 20), (("rack-1", tuple(f"10.0.1.{i}" for i in range(1, 11))), ("rack-2", tuple(f"10.0.2.{i}" for i in range(1, 11))))
    )
    return MinerFleets([spec], factory, poll_s=0.01), made


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_before_connecting_targets_are_kept_and_readings_count_rated_power():
    driver, groups = fleets()
    assert driver.read() == {"s21": (20 * 3_500, 20 * 3_500)}  # no target yet: they may run at stock
    assert driver.set_target("s21", 10) == 20 * 25  # clamped to standby
    assert driver.set_target("s21", 30_000) == 30_000
    assert driver.read()["s21"][1] == 30_000  # the target it is told (the guard works from this)
    assert driver.confirmed_targets()["s21"] == 20 * 3_500  # not sent, let alone acknowledged: confirms nothing yet
    assert groups["rack-1"].applied == []  # nothing sent before run() connects


def test_run_connects_applies_and_a_new_target_goes_out_at_once():
    async def body():
        driver, groups = fleets()
        driver.set_target("s21", 30_000)
        task = asyncio.create_task(driver.run())
        await until(lambda: groups["rack-1"].applied and groups["rack-2"].applied)
        # The target is reported once every group acknowledged it and a later poll read the miners.
        await until(lambda: driver.confirmed_targets()["s21"] == 30_000)
        assert driver.read()["s21"] == (20_000.0, 30_000)
        assert groups["rack-1"].applied[-1] == pytest.approx(15_000)  # equal racks, equal shares
        driver.poll_s = 60.0  # no more polls: only the target itself can trigger an apply now
        await asyncio.sleep(0.05)
        driver.set_target("s21", 10_000)
        await until(lambda: groups["rack-1"].applied[-1] == pytest.approx(5_000))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(body())


def test_silent_miners_raise_a_rack_floor_and_lower_the_other_rack():
    async def body():
        driver, groups = fleets()
        groups["rack-2"].silent = ["10.0.2.1", "10.0.2.2", "10.0.2.3"]
        groups["rack-2"].stuck = ["10.0.2.9"]
        driver.set_target("s21", 30_000)
        task = asyncio.create_task(driver.run())
        await until(lambda: len(groups["rack-1"].applied) >= 2)
        one, two = groups["rack-1"].applied[-1], groups["rack-2"].applied[-1]
        assert one + two == pytest.approx(30_000) and one < two  # rack-2's silent miners count at rated power
        assert driver.problems() == [
            "rack-2: 1 miner stuck, not reaching their setting (10.0.2.9); counted as they draw, the other miners lowered to hold the target",
            "rack-2: 3 miners not answering (10.0.2.1, 10.0.2.2, 10.0.2.3), each counted at its last reading or rated power",
        ]
        assert driver.miner_health() == {"s21": {"answering": 16, "not_answering": 3, "stuck": 1}}  # the metrics' figures
        driver.set_target("s21", 1_000)
        await until(lambda: any("below what the fleet can get down to" in line for line in driver.problems()))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(body())


def test_a_group_that_fails_is_reported_and_keeps_its_last_figures():
    async def body():
        driver, groups = fleets()
        driver.set_target("s21", 30_000)
        task = asyncio.create_task(driver.run())
        await until(lambda: groups["rack-1"].applied)
        groups["rack-1"].fail = "actor died"
        await until(lambda: "rack-1: the group does not answer (apply: actor died; read: actor died); its last figures are kept" in driver.problems())
        assert driver.read()["s21"][0] == 20_000.0
        groups["rack-1"].fail = None
        await until(lambda: not driver.problems())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(body())


def test_a_group_that_cannot_connect_is_reported_and_connected_later_in_the_background():
    async def body():
        driver, groups = fleets()
        groups["rack-2"].connect_fails = 3
        task = asyncio.create_task(driver.run())
        await until(lambda: driver.ready)
        assert driver.problems() == ["rack-2: the group does not answer (connect: not up yet); its last figures are kept"]
        await until(lambda: groups["rack-2"].connects == 4 and not driver.problems())
        assert "rack-2" in driver.status()["connected"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(body())


def test_the_agent_records_each_problem_once_as_a_local_action():
    config = parse_site_config({"interconnect_cap_mw": 1.0, "fleets": [{"fleet_id": "s21", "model": "S21", "count": 20}]})
    driver, groups = fleets()
    power = SitePowerControl(config, driver)
    lines = ["rack-2: 3 miners not answering (10.0.2.1, 10.0.2.2, 10.0.2.3), each counted at its last reading or rated power"]
    driver.problems = lambda: list(lines)
    _, heartbeat_now = power.tick(True, [])
    assert heartbeat_now and [a.what for a in power.pending_actions] == lines
    power.tick(True, [])
    assert len(power.pending_actions) == 1  # the same line is not recorded again
    lines.append("rack-1: 1 miner stuck, ...")
    power.tick(True, [])
    assert [a.what for a in power.pending_actions][-1] == "rack-1: 1 miner stuck, ..."
    lines.clear()
    power.tick(True, [])
    lines.append("rack-1: 1 miner stuck, ...")
    power.tick(True, [])  # gone, then back: a new event
    assert len(power.pending_actions) == 3


async def until(predicate, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_groups_are_identified_a_few_at_a_time_not_all_at_once():
    connecting, most = 0, 0

    class SlowToConnect(FakeGroup):
        async def connect(self) -> dict:
            nonlocal connecting, most
            connecting += 1
            most = max(most, connecting)
            await asyncio.sleep(0.01)
            connecting -= 1
            return await super().connect()

    racks = tuple((f"rack-{k}", (f"10.0.{k}.1",)) for k in range(1, 7))
    made = {}

    def factory(group_id, addresses, model):
        made[group_id] = SlowToConnect(group_id, addresses, model)
        return made[group_id]

    async def body():
        driver = MinerFleets([MinerFleetSpec(Fleet("s21", S21, 6), racks)], factory, poll_s=0.01, groups_connecting=2)
        task = asyncio.create_task(driver.run())
        await until(lambda: driver.ready)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(body())
    assert most == 2 and all(g.connects == 1 for g in made.values())


def test_a_group_raised_while_another_is_still_coming_down_waits_for_it():
    class Reading(FakeGroup):
        measured_w = 20_000.0

        async def read(self) -> dict:
            figures = await super().read()
            return {**figures, "measured_w": self.measured_w}

    made: dict[str, Reading] = {}

    def factory(group_id, addresses, model):
        made[group_id] = Reading(group_id, addresses, model)
        return made[group_id]

    racks = tuple((f"rack-{k}", tuple(f"10.0.{k}.{i}" for i in range(1, 11))) for k in (1, 2))

    async def body():
        driver = MinerFleets([MinerFleetSpec(Fleet("s21", S21, 20), racks)], factory, poll_s=0.01)
        driver.set_target("s21", 30_000)  # 15 kW each
        task = asyncio.create_task(driver.run())
        rack_1, rack_2 = made["rack-1"], made["rack-2"]
        await until(lambda: rack_1.applied and rack_2.applied)
        # Half of rack-2 goes silent: counted at rated power, its floor rises, so the split gives
        # it more (21.7 kW) and rack-1 less (8.3 kW); rack-1 still reads 20 kW.
        rack_2.silent = list(rack_2.addresses[:5])
        await until(lambda: rack_1.applied[-1] < 9_000)
        for _ in range(5):
            await asyncio.sleep(0.02)
            assert rack_2.applied[-1] == pytest.approx(15_000)  # held at what it had
        rack_1.measured_w = 8_000.0  # down
        await until(lambda: rack_2.applied[-1] > 21_000)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(body())
