"""A cut is answered with the fewest commands, then rebalanced: `split.fast_cut` (pure) and
MinerGroup's use of it against stand-in miners (tests/unit/test_miner_group_races.py)."""

from __future__ import annotations

import asyncio
import dataclasses

from agents.miners.group import MinerGroup
from agents.miners.split import MinerState, fast_cut, split_group
from scheduler.core.power import MINER_MODELS
from tests.builders import FakeClock
from tests.unit.test_miner_group_races import StandInFactory, StandInMiner

S21 = MINER_MODELS["S21"]  # 3,500 W rated, 2,400 W lowest limit, 25 W paused


def _state(ip: str, **kwargs) -> MinerState:
    return MinerState(ip=ip, model=S21, takes_power_limit=True, can_pause=True, **kwargs)


def test_a_cut_pauses_the_fewest_miners_biggest_savings_first_and_leaves_the_rest_alone():
    miners = [_state("10.0.0.1", setting_w=2_500.0), _state("10.0.0.2", setting_w=3_500.0), _state("10.0.0.3", setting_w=3_000.0)]
    plan = fast_cut(miners, 6_600.0)  # 9,000 W now: pausing the 3,500 W miner leaves 5,525 W
    assert plan is not None and plan.fits
    assert plan.settings == {"10.0.0.2": split_group(miners, 0.0).settings["10.0.0.2"]}  # paused, nothing else sent
    assert plan.planned_w == 2_500.0 + 25.0 + 3_000.0
    efficient = split_group(miners, 6_600.0)
    assert len(efficient.settings) == 3  # the split would command every miner


def test_no_fast_plan_when_already_under_or_when_pauses_alone_cannot_reach_the_target():
    miners = [_state(f"10.0.0.{i}", setting_w=3_000.0) for i in range(1, 4)]
    assert fast_cut(miners, 9_000.0) is None  # not a cut
    pause_only_not_enough = [_state("10.0.0.1", setting_w=3_500.0), dataclasses.replace(_state("10.0.0.2"), can_pause=False)]
    assert fast_cut(pause_only_not_enough, 3_000.0) is None  # the one that cannot pause needs a lower limit


def test_miners_not_answering_are_counted_as_they_are_and_more_are_paused_for_them():
    miners = [_state("10.0.0.1", setting_w=3_500.0), _state("10.0.0.2", setting_w=3_500.0), _state("10.0.0.3", answering=False, last_w=3_500.0)]
    plan = fast_cut(miners, 4_000.0)
    assert plan is not None and sorted(plan.settings) == ["10.0.0.1", "10.0.0.2"]
    assert plan.planned_w == 25.0 + 25.0 + 3_500.0


def _group(n: int, clock: FakeClock, **kwargs):
    gate = asyncio.Event()
    gate.set()
    ips = [f"127.9.8.{i}" for i in range(1, n + 1)]
    miners = {ip: StandInMiner(gate) for ip in ips}
    group = MinerGroup("rack", ips, S21, factory=StandInFactory(miners), clock=clock, settle_poll_s=0.01, **kwargs)
    return group, miners


def test_a_group_meets_a_cut_with_pauses_alone_holds_it_then_rebalances_under_the_target():
    async def run():
        clock = FakeClock()
        group, miners = _group(8, clock, rebalance_after_s=60.0)
        await group.connect()
        cut = await group.apply(14_000.0)  # half of 8 x 3,500 W
        actions = [a["action"] for a in cut["acks"]]
        assert actions == ["pause"] * 5  # 28,000 - 5 x 3,475 = 10,625 W; the split would send 8 commands
        assert sum(m.watts for m in miners.values()) <= 14_000.0
        clock.advance(30.0)
        await group.read()
        assert (await group.apply(14_000.0))["acks"] == []  # held while the target holds
        clock.advance(31.0)
        rebalanced = await group.apply(14_000.0)
        await asyncio.gather(*group._raises_held)
        running = [m for m in miners.values() if m.watts > S21.standby_w]
        assert len(running) == 5  # the split: 3 paused, 5 running at one lower limit
        assert {m.watts for m in running} == {2_785.0}
        assert sum(m.watts for m in miners.values()) <= 14_000.0
        assert rebalanced["acks"]
        await group.close()

    asyncio.run(run())


def test_a_rising_target_during_the_hold_goes_to_the_split_at_once():
    async def run():
        clock = FakeClock()
        group, miners = _group(4, clock, rebalance_after_s=60.0)
        await group.connect()
        await group.apply(7_100.0)  # 14,000 - 2 x 3,475 = 7,050 W
        assert sum(1 for m in miners.values() if m.watts == S21.standby_w) == 2
        await group.read()
        raised = await group.apply(4 * 2_600.0)  # the cut eased within the hold
        await asyncio.gather(*group._raises_held)
        assert raised["paused"] == 0 and {m.watts for m in miners.values()} == {2_600.0}
        await group.close()

    asyncio.run(run())


def test_without_fast_cuts_the_group_sends_the_split_at_once():
    async def run():
        group, miners = _group(8, FakeClock(), fast_cuts=False)
        await group.connect()
        cut = await group.apply(14_000.0)
        sent = [a["action"] for a in cut["acks"]]
        assert (sent.count("pause"), sent.count("set_power_limit")) == (3, 5)  # and a resume each: their state was unknown
        assert sum(m.watts for m in miners.values()) <= 14_000.0

    asyncio.run(run())
