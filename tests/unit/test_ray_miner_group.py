"""RayMinerGroup's fallback: when the group's Ray actor does not answer in time, or is
gone, the same call is served by a direct MinerGroup in the agent's process, so
curtailment works with Ray unhealthy (no Ray cluster is started here: the actor call
is what fails)."""

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
def test_a_call_ray_does_not_serve_is_served_directly(monkeypatch, failure):
    g = group(monkeypatch, failure)
    result = asyncio.run(g.apply(7000.0))
    assert result["served_by"] == "direct" and result["target_w"] == 7000.0
    [direct] = FakeDirectGroup.made
    assert direct.calls == [("connect",), ("apply", 7000.0)]  # connected once, then the command
    assert g.fallbacks == 1
    asyncio.run(g.read())
    assert direct.calls[-1] == ("read",) and len(FakeDirectGroup.made) == 1 and g.fallbacks == 2


def test_a_served_call_does_not_touch_the_miners_directly(monkeypatch):
    FakeDirectGroup.made.clear()
    monkeypatch.setattr(ray_groups, "MinerGroup", FakeDirectGroup)
    g = ray_groups.RayMinerGroup("tx-1", "rack-1", ["127.9.0.1"], MINER_MODELS["S21"])

    async def served(method, *args, timeout_s=None):
        return {"served_by": "ray", "method": method, "args": args}

    monkeypatch.setattr(g, "_call", served)
    assert asyncio.run(g.apply(3000.0)) == {"served_by": "ray", "method": "apply", "args": (3000.0,)}
    assert FakeDirectGroup.made == [] and g.fallbacks == 0
