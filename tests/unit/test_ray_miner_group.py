"""RayMinerGroup's fallback: when the group's Ray actor does not answer a command in
time, or is gone, the same call is served by a direct MinerGroup in the agent's process,
so curtailment works with Ray unhealthy; a live actor slow to read is waited on, not
doubled, until the takeover time (no Ray cluster is started here: the actor call is
what fails)."""

from __future__ import annotations

import asyncio

import pytest

ray_groups = pytest.importorskip("agents.miners.ray_groups")
from scheduler.core.power import MINER_MODELS  # noqa: E402


class FakeDirectGroup:
    """Stands in for MinerGroup (pyasic_rs) and records what it was asked."""

    made: list[FakeDirectGroup] = []

    def __init__(self, group_id, addresses, model, command_timeout_s=2.0):
        self.group_id, self.addresses, self.calls = group_id, addresses, []
        FakeDirectGroup.made.append(self)

    async def connect(self):
        self.calls.append(("connect",))
        return {"group_id": self.group_id, "found": list(self.addresses), "missing": []}

    async def apply(self, target_w):
        self.calls.append(("apply", target_w))
        return {"group_id": self.group_id, "target_w": target_w, "acks": []}

    async def read(self):
        self.calls.append(("read",))
        return {"group_id": self.group_id, "measured_w": 0.0}


def group(monkeypatch, failure: Exception):
    FakeDirectGroup.made.clear()
    monkeypatch.setattr(ray_groups, "MinerGroup", FakeDirectGroup)
    g = ray_groups.RayMinerGroup("tx-1", "rack-1", ["127.9.0.1", "127.9.0.2"], MINER_MODELS["S21"], call_timeout_s=0.05)

    async def failing_call(method, *args, timeout_s=None):
        raise failure

    monkeypatch.setattr(g, "_call", failing_call)
    return g


@pytest.mark.parametrize("failure", [TimeoutError(), ConnectionError("actor gone")])
def test_a_command_ray_does_not_serve_is_served_directly(monkeypatch, failure):
    g = group(monkeypatch, failure)
    result = asyncio.run(g.apply(7000.0))
    assert result["served_by"] == "direct" and result["target_w"] == 7000.0
    [direct] = FakeDirectGroup.made
    assert direct.calls == [("connect",), ("apply", 7000.0)]  # connected once, then the command
    assert g.fallbacks == 1


def test_a_read_of_a_gone_actor_is_served_directly_at_once(monkeypatch):
    g = group(monkeypatch, ConnectionError("actor gone"))
    assert asyncio.run(g.read())["served_by"] == "direct"
    [direct] = FakeDirectGroup.made
    assert direct.calls == [("connect",), ("read",)] and g.fallbacks == 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_slow_actors_reads_fail_without_reading_the_miners_twice_until_the_takeover_time(monkeypatch):
    """The actor's read goes on; the agent does not poll the same miners beside it (that
    doubled the load on a saturated box) until the actor has been slow takeover_after_s."""
    FakeDirectGroup.made.clear()
    monkeypatch.setattr(ray_groups, "MinerGroup", FakeDirectGroup)
    clock = Clock()
    g = ray_groups.RayMinerGroup("tx-1", "rack-1", ["127.9.0.1"], MINER_MODELS["S21"], command_timeout_s=0.01, call_timeout_s=0.02, takeover_after_s=10.0, clock=clock)
    asked: list[str] = []

    async def scenario() -> None:
        answer = asyncio.Event()

        async def slow_call(method, *args, timeout_s=None):
            asked.append(method)
            await answer.wait()
            return {"served_by": "ray", "measured_w": 1.0}

        monkeypatch.setattr(g, "_call", slow_call)
        for _ in range(2):
            with pytest.raises(TimeoutError, match="slow to read"):
                await g.read()
            clock.now += 5.0
        assert asked == ["read"] and FakeDirectGroup.made == []  # one read in flight, no direct polling
        clock.now += 0.5  # 10.5 s slow: the agent reads the miners itself
        assert (await g.read())["served_by"] == "direct" and g.fallbacks == 1
        answer.set()  # the actor answers after all
        await asyncio.sleep(0)
        assert (await g.read()) == {"served_by": "ray", "measured_w": 1.0}
        assert asked == ["read"]
        with pytest.raises(TimeoutError, match="slow to read for 0 s"):  # a new slow spell starts from zero
            answer.clear()
            await g.read()

    asyncio.run(scenario())


def test_a_served_call_does_not_touch_the_miners_directly(monkeypatch):
    FakeDirectGroup.made.clear()
    monkeypatch.setattr(ray_groups, "MinerGroup", FakeDirectGroup)
    g = ray_groups.RayMinerGroup("tx-1", "rack-1", ["127.9.0.1"], MINER_MODELS["S21"])

    async def served(method, *args, timeout_s=None):
        return {"served_by": "ray", "method": method, "args": args}

    monkeypatch.setattr(g, "_call", served)
    assert asyncio.run(g.apply(3000.0)) == {"served_by": "ray", "method": "apply", "args": (3000.0,)}
    assert FakeDirectGroup.made == [] and g.fallbacks == 0
