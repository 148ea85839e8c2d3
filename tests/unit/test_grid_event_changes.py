"""Grid events modified (a higher modification number replaces the content) and ended
early: the pure rules (scheduler/core/grid.py), the power state machine reacting at once,
old stored records still loading, and the same through real gRPC on loopback
(OperatorService.PostGridEvent / EndGridEvent) with the errors an operator sees."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json

import grpc
import pytest

from scheduler.api.v1 import operator_pb2, operator_pb2_grpc
from scheduler.core.decisions import SetMiningTargets
from scheduler.core.errors import FailedPrecondition, NotFound
from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord, GridEventState, end_early, modify
from scheduler.core.job_table import JobTable
from scheduler.core.power_state import DispatchDue, GridEventEnded, GridEventPosted, PowerRead, PowerReading, PowerSettings, PowerState, SiteAttached
from scheduler.server.app import SchedulerServer
from scheduler.server.config import SchedulerConfig
from scheduler.store.documents import grid_record_from_doc, grid_record_to_doc
from tests.builders import NOW, a_site_power

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1800).with_gpus(8).build()
SITES = frozenset({"tx-1"})
CUT = GridEvent("cut", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 3600, site_id="tx-1", cap_w=3e6, reason="utility")


def a_record(event: GridEvent = CUT) -> GridEventRecord:
    return GridEventRecord(event, NOW - 10)


# ----------------------------------------------------------------- the pure rules
def test_the_same_modification_is_idempotent_and_other_content_under_it_is_refused():
    assert modify(a_record(), CUT, SITES, NOW) is None
    assert modify(a_record(), dataclasses.replace(CUT, start=NOW + 5), SITES, NOW) is None  # a start left to default
    with pytest.raises(FailedPrecondition, match="different content"):
        modify(a_record(), dataclasses.replace(CUT, cap_w=2e6), SITES, NOW)


def test_a_higher_modification_replaces_the_content_and_a_lower_one_is_refused():
    changed = modify(a_record(), dataclasses.replace(CUT, cap_w=2e6, modification=1), SITES, NOW + 1)
    assert changed is not None and changed.event.cap_w == 2e6 and changed.modified_at == NOW + 1 and changed.received_at == NOW - 10
    with pytest.raises(FailedPrecondition, match="modification 1; modification 0 is older"):
        modify(changed, CUT, SITES, NOW + 2)
    with pytest.raises(FailedPrecondition, match="kind or site"):
        modify(changed, dataclasses.replace(CUT, site_id="tx-2", modification=2), SITES | {"tx-2"}, NOW + 2)


def test_ending_early_keeps_when_why_and_the_end_it_had():
    ended = end_early(a_record(), None, "by ops: utility cancelled", NOW + 60)
    assert ended.event.end == NOW + 60 and ended.scheduled_end == NOW + 3600 and ended.ended_at == NOW + 60
    assert ended.end_reason == "by ops: utility cancelled" and ended.event.state(NOW + 60) == GridEventState.ENDED
    with pytest.raises(FailedPrecondition, match="already ended early"):
        end_early(ended, None, "again", NOW + 61)
    with pytest.raises(FailedPrecondition, match="cannot reopen"):
        modify(ended, dataclasses.replace(CUT, modification=1), SITES, NOW + 61)
    assert modify(ended, CUT, SITES, NOW + 61) is None  # the original content again is the same event
    with pytest.raises(FailedPrecondition, match="would not end it early"):
        end_early(a_record(), NOW + 7200, "", NOW)
    upcoming = a_record(dataclasses.replace(CUT, start=NOW + 600))
    never = end_early(upcoming, NOW + 300, "", NOW)  # ended before it starts: never takes effect
    assert never.event.end == NOW and never.event.state(NOW) == GridEventState.ENDED


def test_old_records_without_the_new_fields_still_load():
    doc = json.loads(grid_record_to_doc(a_record()))
    for name in ("modified_at", "ended_at", "scheduled_end", "end_reason"):
        del doc[name]
    del doc["event"]["modification"]
    assert grid_record_from_doc(json.dumps(doc)) == a_record()
    ended = end_early(a_record(), None, "why", NOW)
    assert grid_record_from_doc(grid_record_to_doc(ended)) == ended


# ----------------------------------------------------------------- the power state machine
def a_site_under_a_cut() -> tuple[PowerState, JobTable]:
    power, jobs = PowerState(PowerSettings()), JobTable()
    power.handle(SiteAttached("tx-1", POWER), jobs, NOW - 100)
    power.handle(DispatchDue(), jobs, NOW - 100)
    power.handle(GridEventPosted(CUT, SITES), jobs, NOW)
    return power, jobs


def mining_target(decision) -> float:
    targets = [o for o in decision.urgent if isinstance(o, SetMiningTargets)]
    assert targets, "no mining target was sent at once"
    return sum(targets[-1].targets_w.values())


def test_a_modified_cap_is_planned_for_at_once():
    power, jobs = a_site_under_a_cut()
    assert power.sites["tx-1"].cap_w == 3e6
    decision = power.handle(GridEventPosted(dataclasses.replace(CUT, cap_w=1e6, modification=1), SITES, "vtn"), jobs, NOW + 1)
    assert power.sites["tx-1"].cap_w == 1e6 and mining_target(decision) * POWER.overhead <= 1e6
    looser = power.handle(GridEventPosted(dataclasses.replace(CUT, cap_w=5e6, modification=2), SITES), jobs, NOW + 2)
    assert power.sites["tx-1"].cap_w == 5e6 and mining_target(looser) * POWER.overhead > 3e6  # not held to the old cut
    later = dataclasses.replace(CUT, cap_w=5e6, start=NOW + 7200, end=NOW + 9000, modification=3)
    power.handle(GridEventPosted(later, SITES), jobs, NOW + 3)
    assert power.sites["tx-1"].cap_w == 7e6  # moved out of the planning lead: no longer planned for
    assert any("modification 1 by vtn" in line for line in power.grid["cut"].response)


def test_a_cut_ended_early_lets_mining_back_at_once():
    power, jobs = a_site_under_a_cut()
    reading = PowerReading({f.fleet_id: (0.0, 0.0) for f in POWER.fleets}, 0, 0, 2e6)
    power.handle(PowerRead("tx-1", reading), jobs, NOW + 1)
    decision = power.handle(GridEventEnded("cut", None, "by ops: done"), jobs, NOW + 10)
    assert mining_target(decision) * POWER.overhead > 6e6  # the cap is the interconnect's again
    assert power.figures("tx-1", jobs, NOW + 10).cap_w == 7e6
    assert power.grid["cut"].event.end == NOW + 10 and decision.grid[-1].ended_at == NOW + 10
    with pytest.raises(NotFound, match="not known"):
        power.handle(GridEventEnded("nope", None, ""), jobs, NOW + 11)


# ----------------------------------------------------------------- through gRPC
OPS = "ops-" + "o" * 24


@contextlib.asynccontextmanager
async def a_scheduler(tmp_path):
    """A scheduler on 127.0.0.1 (an ephemeral port) with the site tx-1 attached."""
    config = SchedulerConfig(listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"], operators={"ops": OPS}, sites={"tx-1": "s" * 16})
    server = SchedulerServer(config)
    port = await server.start()
    try:
        await server.controller.attach("tx-1", "us", (), [], POWER)
        yield server, port
    finally:
        await server.stop(0)


def test_modify_and_end_early_over_grpc(tmp_path):
    async def main():
        async with a_scheduler(tmp_path) as (server, port):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = operator_pb2_grpc.OperatorServiceStub(channel)
                md = (("authorization", f"Bearer {OPS}"),)
                event = operator_pb2.GridEvent(event_id="cut", kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT, site_id="tx-1", cap_w=3e6)
                event.end.FromSeconds(int(server.controller.clock()) + 3600)
                await stub.PostGridEvent(event, metadata=md)
                event.cap_w, event.modification = 2e6, 2
                status = await stub.PostGridEvent(event, metadata=md)
                assert status.event.cap_w == 2e6 and status.event.modification == 2 and status.HasField("modified_at")
                assert server.controller.power.sites["tx-1"].cap_w == 2e6
                event.modification = 1
                with pytest.raises(grpc.aio.AioRpcError) as older:
                    await stub.PostGridEvent(event, metadata=md)
                assert older.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "is older" in older.value.details()
                ended = await stub.EndGridEvent(operator_pb2.EndGridEventRequest(event_id="cut", reason="utility cancelled"), metadata=md)
                assert ended.state == operator_pb2.GRID_EVENT_STATE_ENDED and ended.end_reason == "by ops: utility cancelled"
                assert ended.HasField("ended_at") and ended.HasField("scheduled_end")
                assert server.controller.power.figures("tx-1", server.controller.jobs, server.controller.clock()).cap_w == 7e6
                for event_id, code in (("cut", grpc.StatusCode.FAILED_PRECONDITION), ("nope", grpc.StatusCode.NOT_FOUND)):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.EndGridEvent(operator_pb2.EndGridEventRequest(event_id=event_id), metadata=md)
                    assert refused.value.code() == code, refused.value.details()
            stored = {r.event.event_id: r for r in server.controller.committer.store.load().grid_events}
            assert stored["cut"].ended_at is not None and stored["cut"].event.modification == 2

    asyncio.run(main())


def test_the_cli_modifies_and_ends_an_event(tmp_path, capsys):
    from scheduler.cli.main import main

    async def run():
        async with a_scheduler(tmp_path) as (server, port):
            where = ["--scheduler", f"127.0.0.1:{port}", "--token", OPS]
            cli = [["grid-event", "cap", "--id", "c", "--site", "tx-1", "--cap-mw", "3", "--start", "+1h", "--end", "+2h", *where]]
            cli.append([*cli[0][:-len(where)], "--cap-mw", "2", "--modification", "1", *where])
            cli += [["grid-event-end", "c", "--reason", "utility cancelled", *where]] * 2
            codes = [await asyncio.to_thread(main, argv) for argv in cli]
            assert codes == [0, 0, 0, 1]
            assert server.controller.power.grid["c"].event.cap_w == 2e6 and server.controller.power.grid["c"].ended_at is not None

    asyncio.run(run())
    out, err = capsys.readouterr()
    assert "cap 2.000 MW (mod 1)" in out and "ENDED (early)" in out and "by ops: utility cancelled" in out
    assert "grid-event-end: FAILED_PRECONDITION: grid event 'c' was already ended early" in err
