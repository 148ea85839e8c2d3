"""MinerGroup against stand-in miners (the pyasic_rs Miner surface it uses), for the
races a real network makes rare: a read that lands while a new setting's commands are
still in flight must not call those miners stuck (they were judged against the old
command's time), commands never wait behind a read, and no new read goes out while a
cut's commands are being sent (reads in flight hold few slots). These groups plan with the
split alone (fast_cuts=False): the races are in the split's two steps."""

from __future__ import annotations

import asyncio

from agents.miners.group import MinerGroup
from scheduler.core.power import MINER_MODELS
from tests.builders import FakeClock

S21 = MINER_MODELS["S21"]


class StandInMiner:
    """Draws what it was last set to at once; commands can be held at a gate."""

    make, model = "AntMiner", "Antminer S21"
    supports_set_power_limit = supports_pause = supports_resume = True

    def __init__(self, gate: asyncio.Event):
        self.watts, self.gate, self.read_gate = float(S21.rated_w), gate, asyncio.Event()
        self.read_gate.set()
        self.reads = 0

    async def get_wattage(self):
        self.reads += 1
        await self.read_gate.wait()
        return self.watts

    async def get_hashrate(self):
        return None

    async def set_power_limit(self, watts):
        await self.gate.wait()
        self.watts = float(watts)
        return True

    async def pause(self):
        await self.gate.wait()
        self.watts = S21.standby_w
        return True

    async def resume(self):
        await self.gate.wait()
        return True


class StandInFactory:
    def __init__(self, miners):
        self.miners = miners

    async def get_miner(self, ip):
        return self.miners.get(ip)


def test_a_read_during_a_new_settings_commands_does_not_call_them_stuck():
    async def run():
        gate = asyncio.Event()
        gate.set()
        ips = [f"127.9.0.{i}" for i in range(1, 5)]
        miners = {ip: StandInMiner(gate) for ip in ips}
        clock = FakeClock(1000.0)
        group = MinerGroup("rack", ips, S21, factory=StandInFactory(miners), clock=clock, grace_s=1.0, fast_cuts=False)
        await group.connect()
        await group.apply(4 * 3000.0)  # first setting, carried out
        await group.read()
        clock.now += 60.0  # long after: the first commands are old
        gate.clear()  # the next commands are in flight, not yet carried out
        applying = asyncio.create_task(group.apply(4 * 2600.0))
        await asyncio.sleep(0.05)
        during = await group.read()  # the miners still draw the old setting
        assert during["stuck"] == []
        gate.set()
        result = await applying
        assert all(a["ok"] for a in result["acks"]) and {m.watts for m in miners.values()} == {2600.0}
        assert (await group.read())["stuck"] == []

    asyncio.run(run())


def test_commands_do_not_wait_behind_a_read():
    async def run():
        gate = asyncio.Event()
        gate.set()
        ips = [f"127.9.1.{i}" for i in range(1, 5)]
        miners = {ip: StandInMiner(gate) for ip in ips}
        group = MinerGroup("rack", ips, S21, factory=StandInFactory(miners), concurrency=2, read_concurrency=2, fast_cuts=False)
        await group.connect()
        for miner in miners.values():
            miner.read_gate.clear()  # every read hangs, holding all the read slots
        reading = asyncio.create_task(group.read())
        await asyncio.sleep(0.05)
        result = await asyncio.wait_for(group.apply(4 * 2600.0), 2.0)  # still served at once
        assert all(a["ok"] for a in result["acks"])
        for miner in miners.values():
            miner.read_gate.set()
        await reading

    asyncio.run(run())


def test_no_read_goes_out_while_a_cuts_commands_are_being_sent():
    async def run():
        gate = asyncio.Event()
        gate.set()
        ips = [f"127.9.2.{i}" for i in range(1, 9)]
        miners = {ip: StandInMiner(gate) for ip in ips}
        group = MinerGroup("rack", ips, S21, factory=StandInFactory(miners), command_timeout_s=30.0, read_concurrency=3, fast_cuts=False)
        await group.connect()
        gate.clear()  # the cut's commands are in flight
        applying = asyncio.create_task(group.apply(8 * 2600.0))
        await asyncio.sleep(0.05)
        before = sum(m.reads for m in miners.values())
        reading = asyncio.create_task(group.read())
        await asyncio.sleep(0.1)
        assert sum(m.reads for m in miners.values()) == before  # held while commands go out
        for miner in miners.values():
            miner.read_gate.clear()
        gate.set()
        assert all(a["ok"] for a in (await applying)["acks"])
        await asyncio.sleep(0.05)
        assert sum(m.reads for m in miners.values()) - before == 3  # then at most read_concurrency at a time
        for miner in miners.values():
            miner.read_gate.set()
        figures = await asyncio.wait_for(reading, 5.0)
        assert figures["answering"] == 8 and sum(m.reads for m in miners.values()) - before == 8

    asyncio.run(run())


class RampingMiner(StandInMiner):
    """Takes a pause at once but draws its old power until `come_down()`; logs every
    command with the draw of all its fleet-mates at that moment."""

    def __init__(self, gate, log, fleet):
        super().__init__(gate)
        self.log, self.fleet, self.pausing = log, fleet, False

    def come_down(self):
        self.watts, self.pausing = S21.standby_w, False

    async def pause(self):
        await self.gate.wait()
        self.pausing = True  # the miner ramps down over seconds
        self.log.append(("pause", sum(m.watts for m in self.fleet)))
        return True

    async def set_power_limit(self, watts):
        await self.gate.wait()
        self.watts = float(watts)
        self.log.append(("set_power_limit", sum(m.watts for m in self.fleet)))
        return True


async def _until(condition, timeout_s=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _ramping_group(prefix, model=S21):
    import dataclasses

    gate, log, fleet = asyncio.Event(), [], []
    gate.set()
    ips = [f"{prefix}.{i}" for i in range(1, 4)]
    miners = {ip: RampingMiner(gate, log, fleet) for ip in ips}
    fleet.extend(miners.values())
    model = dataclasses.replace(S21, **model) if isinstance(model, dict) else model
    group = MinerGroup("rack", ips, model, factory=StandInFactory(miners), settle_poll_s=0.01, fast_cuts=False)
    return group, ips, miners, log


def test_a_lower_target_that_pauses_one_raises_the_others_only_once_it_is_down():
    async def run():
        group, ips, miners, log = _ramping_group("127.9.3")
        await group.connect()
        await group.apply(3 * 3000.0)  # all running at 3,000 W
        await group.read()
        before = sum(m.watts for m in miners.values())
        log.clear()
        # Lower: one pauses (25 W), the other two go up to (6,825 - 25) / 2 = 3,400 W.
        result = await asyncio.wait_for(group.apply(25.0 + 2 * 3400.0), 1.0)  # the cut is not held up
        paused = [a["ip"] for a in result["acks"] if a["action"] == "pause"]
        assert len(paused) == 1
        polled = miners[paused[0]].reads
        await _until(lambda: miners[paused[0]].reads >= polled + 3)  # the group polls it meanwhile: still up
        assert [action for action, _ in log] == ["pause"]  # nothing raised yet
        assert result["raising"] == sorted(set(ips) - set(paused))
        miners[paused[0]].come_down()
        await _until(lambda: len(log) == 3)
        assert [action for action, _ in log] == ["pause", "set_power_limit", "set_power_limit"]
        assert max(total for _, total in log) <= before  # the site never went above where it was
        assert {miners[ip].watts for ip in result["raising"]} == {3400.0}
        await group.close()

    asyncio.run(run())


def test_raises_go_out_after_the_ramp_down_time_when_a_miner_never_reads_down():
    async def run():
        group, ips, miners, log = _ramping_group("127.9.4", {"ramp_down_s": 0.3})
        await group.connect()
        await group.apply(3 * 3000.0)
        await group.read()
        log.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await group.apply(25.0 + 2 * 3400.0)
        assert len(result["raising"]) == 2
        await _until(lambda: len(log) == 3)
        assert loop.time() - started >= 0.3  # held for the model's ramp_down_s, then sent
        await group.close()

    asyncio.run(run())


def test_hashrate_is_read_once_a_period_spread_over_the_group_not_with_every_wattage_poll():
    class Counting(StandInMiner):
        hashrate_reads = 0

        async def get_hashrate(self):
            self.hashrate_reads += 1
            return None

    async def run():
        gate = asyncio.Event()
        gate.set()
        clock = FakeClock()
        ips = [f"127.9.5.{i}" for i in range(1, 5)]
        miners = {ip: Counting(gate) for ip in ips}
        group = MinerGroup("rack", ips, S21, factory=StandInFactory(miners), clock=clock, hashrate_every_s=10.0)
        await group.connect()  # the first read takes both
        assert [m.hashrate_reads for m in miners.values()] == [1, 1, 1, 1]
        for _ in range(4):  # 4 s of polls once a second: wattage only
            clock.advance(1.0)
            await group.read()
        assert [m.hashrate_reads for m in miners.values()] == [1, 1, 1, 1] and all(m.reads == 5 for m in miners.values())
        clock.advance(16.0)
        await group.read()
        assert [m.hashrate_reads for m in miners.values()] == [2, 2, 2, 2]  # due again within a period and a half
        await group.close()

    asyncio.run(run())


def test_miners_that_stopped_answering_take_no_read_slot():
    class Tracked(StandInMiner):
        in_flight = 0

        async def get_wattage(self):
            self.in_flight += 1
            try:
                return await super().get_wattage()
            finally:
                self.in_flight -= 1

    async def run():
        gate = asyncio.Event()
        gate.set()
        ips = ["127.9.6.1", "127.9.6.2", "127.9.6.3"]  # the two that hang first: they would take the slot first
        miners = {ip: Tracked(gate) for ip in ips}
        group = MinerGroup("rack", ips, S21, factory=StandInFactory(miners), command_timeout_s=0.3, read_concurrency=1)
        await group.connect()
        hung, good = [miners[ip] for ip in ips[:2]], miners[ips[2]]
        for miner in hung:
            miner.read_gate.clear()  # these two hang from now on
        first = await group.read()  # they hold the one slot, one after the other, until each times out
        assert sorted(first["not_answering"]) == ips[:2]
        before = good.reads
        reading = asyncio.create_task(group.read())
        await _until(lambda: good.reads > before)
        assert [m.in_flight for m in hung] == [1, 1]  # read while both silent miners' polls were still out: no slot waited for them
        assert (await reading)["answering"] == 1
        await group.close()

    asyncio.run(run())
