"""Retention: the event log keeps its newest events (both stores), ended price events are
dropped from the store and from memory, and a watch resuming from a compacted event id gets
OUT_OF_RANGE naming the id to resume from (over real gRPC, an in-process scheduler)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from scheduler.api.v1 import tenant_pb2, tenant_pb2_grpc
from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord
from scheduler.core.jobs import JobState, transition
from scheduler.server.app import SchedulerServer
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.store.sqlite import SqliteStore
from tests.builders import NOW, FakeClock, a_job

TOKEN = "acme-" + "a" * 24


def test_the_event_log_keeps_its_newest_events_and_says_where_it_was_cut(store_backend):
    store = store_backend.open()
    job = a_job().build()
    ids = []
    for i in range(5):
        _, event = transition(job, JobState.CANCELLED, f"event {i}", float(i))
        ids += store.commit([job] if i == 0 else [], [event], [])
    assert store.compacted_through() == 0
    assert store.compact_events(keep=2) == 3
    assert store.compacted_through() == ids[2]
    assert [e.event_id for e in store.events_after(job.tenant, 0)] == ids[3:]
    assert store.compact_events(keep=2) == 0  # nothing newer to cut
    price = GridEventRecord(GridEvent("p1", GridEventKind.PRICE, 0.0, 10.0, market_node="HB_WEST", usd_per_mwh=40.0), 0.0)
    store.commit([], [], [], [price])
    assert store.delete_grid_events(["p1", "nope"]) == 1
    assert store_backend.reopen(store).load().grid_events == []


def test_retention_compacts_the_log_and_drops_ended_prices_from_store_and_memory(tmp_path):
    async def main():
        clock = FakeClock()
        config = SchedulerConfig(regions=["us"], schedule_interval_s=3600, retention={"events": 1000, "prices_s": 60})
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config, clock)
        await controller.start(loops=False)
        try:
            for i in range(1005):
                await controller.submit("acme", f"r{i}", a_job().training(gpus=1).in_regions("us").build().spec)
            old = GridEvent("old-price", GridEventKind.PRICE, NOW - 7200, NOW - 3600, market_node="HB_WEST", usd_per_mwh=30.0)
            live = GridEvent("price-now", GridEventKind.PRICE, NOW - 60, NOW + 3600, market_node="HB_WEST", usd_per_mwh=35.0)
            for event in (old, live):
                await controller.post_grid_event(event)
            assert await controller.apply_retention() == (5, 1)
            assert set(controller.power.grid) == {"price-now"}
            store = controller.committer.store
            assert [r.event.event_id for r in store.load().grid_events] == ["price-now"]
            assert store.compacted_through() == 5 and len(store.events_after("acme", 0, limit=2000)) == 1000
        finally:
            await controller.stop()

    asyncio.run(main())


def test_a_watch_resuming_from_a_compacted_id_is_told_where_to_resume(tmp_path):
    async def main():
        config = SchedulerConfig(listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"], tenants={"acme": TOKEN})
        server = SchedulerServer(config)
        port = await server.start()
        try:
            for i in range(4):
                await server.controller.submit("acme", f"r{i}", a_job().training(gpus=1).in_regions("us").build().spec)
            await server.controller.committer.read(server.controller.committer.store.compact_events, 2)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = tenant_pb2_grpc.TenantServiceStub(channel)
                metadata = (("authorization", f"Bearer {TOKEN}"),)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async for _ in stub.WatchJobs(tenant_pb2.WatchJobsRequest(after_event_id=1), metadata=metadata, timeout=10):
                        pass
                assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
                assert "resume with after_event_id=2" in refused.value.details()
                stream = stub.WatchJobs(tenant_pb2.WatchJobsRequest(after_event_id=0), metadata=metadata, timeout=10)
                first = await stream.read()  # from the oldest kept
                stream.cancel()
                assert first.event_id == 3
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_open_ended_prices_are_over_once_a_newer_one_of_their_node_and_kind_starts():
    """A feed posts each interval's price open-ended (in force until the next): retention
    drops the superseded ones, never the newest of a series, and keeps forecasts apart."""
    from scheduler.core.grid import FOREVER, prices_over_before

    def price(event_id, start, node="HB_WEST", forecast=False, end=FOREVER):
        return GridEvent(event_id, GridEventKind.PRICE, start, end, market_node=node, usd_per_mwh=30.0, forecast=forecast)

    events = [
        price("rt-1", 0), price("rt-2", 900), price("rt-3", 1800),  # rt-1 over at 900, rt-2 at 1800
        price("other-1", 0, node="HB_SOUTH"),  # the newest of its node: in force
        price("da-1", 0, forecast=True), price("da-2", 3600, forecast=True),  # da-1 over at 3600
        price("ended", 0, end=100, node="HB_NORTH"),
        GridEvent("hp-1", GridEventKind.HASHPRICE, 0, hashprice_usd_per_ph_day=40), GridEvent("hp-2", GridEventKind.HASHPRICE, 500, hashprice_usd_per_ph_day=41),
    ]
    assert prices_over_before(events, 1000) == ["ended", "hp-1", "rt-1"]
    assert prices_over_before(events, 10_000) == ["da-1", "ended", "hp-1", "rt-1", "rt-2"]
