"""The views (scheduler/server/views.py): the power snapshot shows an operator every site,
its runs, the grid events and every open job, and a tenant only its own open jobs; the
change feed wakes followers on a change, coalesces a burst into one snapshot, and still
yields every refresh period with no change."""

from __future__ import annotations

import asyncio

from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.server.views import ChangeFeed, Views
from tests.builders import NOW, a_job
from tests.unit.test_metrics import running_site


def test_an_operator_sees_sites_events_and_jobs_a_tenant_only_its_own_jobs(tmp_path):
    async def main():
        controller, _ = await running_site(tmp_path)  # acme's job pending, a cap cut posted
        try:
            await controller.submit("globex", "g1", a_job().training(gpus=1).in_regions("us").build().spec)
            views = Views(controller)
            operator = views.snapshot()
            assert [s.site.site_id for s in operator.sites] == ["tx-1"]
            assert operator.sites[0].site.power.cap_w == 5e6  # the cut in force: what GetSite shows
            assert [e.event.event_id for e in operator.grid_events] == ["cut"]
            assert sorted(j.tenant for j in operator.jobs) == ["acme", "globex"]
            assert operator.version == controller.changes.version > 0
            acme = views.snapshot("acme")
            assert not acme.sites and not acme.grid_events
            assert [j.tenant for j in acme.jobs] == ["acme"] and acme.jobs[0].pending_reason == "waiting for the next scheduling pass"
        finally:
            await controller.stop()

    asyncio.run(main())


def test_the_feed_yields_at_once_then_on_change_coalesced_and_on_refresh():
    async def main():
        feed = ChangeFeed()
        follower = feed.follow(min_interval_s=0.1, refresh_s=30)
        assert await anext(follower) == 0  # at once
        waiting = asyncio.ensure_future(anext(follower))
        await asyncio.sleep(0)
        feed.bump()
        feed.bump()
        feed.bump()  # a burst: one snapshot
        assert await asyncio.wait_for(waiting, 10) == 3
        quiet = feed.follow(min_interval_s=0.1, refresh_s=0.2)
        assert await anext(quiet) == 3
        assert await asyncio.wait_for(anext(quiet), 10) == 3  # no change: the refresh still comes

    asyncio.run(main())


def test_a_posted_grid_event_moves_the_feed(tmp_path):
    async def main():
        controller, _ = await running_site(tmp_path)
        try:
            before = controller.changes.version
            waiting = asyncio.ensure_future(controller.changes.wait_past(before, 30))
            await controller.post_grid_event(GridEvent("ercot", GridEventKind.EMERGENCY, start=NOW, end=NOW + 60, site_id="tx-1"))
            assert await asyncio.wait_for(waiting, 10) > before
        finally:
            await controller.stop()

    asyncio.run(main())


def test_a_job_placed_but_waiting_for_mining_to_come_down_says_so(tmp_path):
    from scheduler.core.jobs import JobState
    from tests.unit.agent_script import confirm, drain
    from tests.unit.test_controller_power import run_with_controller, training

    async def body(controller, session, clock):
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))  # mining fills the cap
        job, _ = await controller.submit("acme", "r1", training())
        await controller.schedule_once()
        await controller.dispatch_power(sweep=True)  # mining asked down; the start is held
        assert controller.jobs[job.job_id].state == JobState.SCHEDULED
        shown = Views(controller).job(controller.jobs[job.job_id])
        assert shown.pending_reason.startswith("waiting for mining to come down to ")
        await confirm(controller, drain(session))
        await controller.dispatch_power(sweep=True)  # mining is down: it starts
        assert Views(controller).job(controller.jobs[job.job_id]).pending_reason == ""

    run_with_controller(tmp_path, body)


def test_the_meter_splits_into_gpu_it_mining_it_and_overhead(tmp_path):
    import pytest

    from scheduler.core.power_state import PowerReading
    from tests.unit.test_metrics import POWER

    async def main():
        controller, _ = await running_site(tmp_path)
        try:
            fleets = {"s19": (100_000.0, 100_000.0), "s21": (50_000.0, 50_000.0)}
            gpu_w = 8 * POWER.gpu_idle_w
            it_w = gpu_w + 150_000.0
            await controller.on_reading("tx-1", PowerReading(fleets, it_w=it_w, gpu_w=gpu_w, meter_w=it_w * POWER.overhead, active_runs=frozenset()))
            power = Views(controller).snapshot().sites[0].site.power
            assert (power.ai_it_w, power.mining_it_w) == (gpu_w, 150_000.0)
            assert power.overhead_w == pytest.approx(it_w * (POWER.overhead - 1))
            assert power.ai_it_w + power.mining_it_w + power.overhead_w == pytest.approx(power.measured_w)
            assert power.ai_w == pytest.approx(gpu_w * POWER.overhead)  # with its share of the overhead
        finally:
            await controller.stop()

    asyncio.run(main())
