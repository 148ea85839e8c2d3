"""Mining as Ray-backed work, judged from outside: tx-1's miner racks are Ray actors on
the shared Ray cluster, a rack actor whose process dies is restarted by Ray and its
miners are still driven; and an agent cut off from the scheduler during a cap event
pauses its miners by itself (read back through pyasic_rs, the miners' own API) and
reports it once the scheduler is back."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pyasic_rs
import pytest
from ray.util.state import list_actors

from scheduler.api.convert import timestamp
from scheduler.api.v1 import operator_pb2
from tests.integration.conftest import TX_POWER, wait_until

pytestmark = pytest.mark.integration
RACKS = {f"pp-miners-tx-1-{g.group_id}": g for f in TX_POWER.fleets for g in f.groups}
STANDBY_W = 25.0  # a paused S19 XP / S21 draws this (DOMAIN.md: LuxOS-class sleep)


def rack_actors(system) -> dict[str, object]:
    """name -> the ALIVE actor of every tx-1 rack."""
    found = list_actors(address=system.cluster.ray_address, filters=[("state", "=", "ALIVE")], raise_on_missing_output=False)
    return {a.name: a for a in found if a.name in RACKS}


def wattages(ips) -> dict[str, float | None]:
    """What each miner says it draws, asked through pyasic_rs."""

    async def read_all():
        factory = pyasic_rs.MinerFactory()

        async def one(ip):
            miner = await factory.get_miner(ip)
            return ip, (await miner.get_wattage()) if miner is not None else None

        return dict(await asyncio.gather(*(one(ip) for ip in ips)))

    return asyncio.run(read_all())


def cap_event(event_id: str, cap_w: float, start: float, end: float) -> operator_pb2.GridEvent:
    return operator_pb2.GridEvent(
        event_id=event_id, kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT, site_id="tx-1", cap_w=cap_w, start=timestamp(start), end=timestamp(end), reason="test"
    )


def test_miner_racks_are_ray_actors_and_a_dead_one_is_restarted_and_still_drives_its_miners(ray_system):
    actors = wait_until(lambda: a if len(a := rack_actors(ray_system)) == len(RACKS) else None, 60, "every rack's actor ALIVE")
    victim_name = "pp-miners-tx-1-s21-r1"
    victim = actors[victim_name]
    os.kill(victim.pid, signal.SIGKILL)  # the actor's worker process dies, as in a crash
    wait_until(lambda: (a := rack_actors(ray_system).get(victim_name)) is not None and a.pid != victim.pid, 60, "Ray to restart the rack's actor")

    # The restarted rack still obeys: a cut down to AI + mining's floor pauses its miners.
    ops = ray_system.ops
    power = ops.site("tx-1").site.power
    ai_w = power.ai_w
    start = time.time() + 5.0
    ops.post_grid_event(cap_event("rack-restart-cut", ai_w + 20 * STANDBY_W * 1.1 + 2_000, start, start + 20))
    rack_ips = list(RACKS[victim_name].miners)
    wait_until(lambda: all(w is not None and w <= STANDBY_W + 1 for w in wattages(rack_ips).values()), 30, f"{victim_name}'s miners to pause")
    wait_until(lambda: time.time() > start + 20, 40, "the cut to end")


def test_an_agent_cut_off_during_a_cap_event_pauses_mining_by_itself_and_reports_it(ray_system):
    cluster, ops = ray_system.cluster, ray_system.ops
    miners = [ip for group in RACKS.values() for ip in group.miners]
    # A cap event that still leaves mining room: the scheduler keeps some miners hashing.
    start = time.time() + 5.0
    ops.post_grid_event(cap_event("cut-off-cut", 40_000, start, start + 60))
    wait_until(lambda: time.time() > start + 3 and sum(w or 0 for w in wattages(miners).values()) > 10_000, 30, "mining at its cut level")

    cluster.scheduler.kill()  # the agent loses its scheduler in the middle of the event
    try:

        def all_paused():
            found = wattages(miners)
            return found if all(v is not None and v <= STANDBY_W + 1 for v in found.values()) else None

        paused = wait_until(all_paused, 30, "every miner paused")
        assert len(paused) == len(miners)
    finally:
        cluster.start_scheduler()
    cluster.wait_sites_ready(ops)

    def reported():
        events = {e.event.event_id: e for e in ops.grid_events(site_id="tx-1").events}
        return [line for line in events["cut-off-cut"].response if "by itself" in line]

    lines = wait_until(reported, 30, "the agent's report of what it did while cut off")
    assert any("paus" in line or "floor" in line or "standby" in line for line in lines), lines
    # Back in touch, mining comes back under the scheduler's targets.
    wait_until(lambda: sum(w or 0 for w in wattages(miners).values()) > 10_000, 40, "mining to resume")
