"""The pure half of the OpenADR VEN (scheduler/core/openadr.py): events as openleadr hands
them become grid events (SIMPLE levels through the program's map, dispatches relative to
the baseline, split over sites, prices at the node), and the opt follows what the ladder
can free without shedding inference (scheduler/core/ladder.py floor_without_inference_w)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from scheduler.core import openadr
from scheduler.core.grid import FOREVER, GridEventKind, GridEventRecord
from scheduler.core.jobs import JobState
from scheduler.core.ladder import floor_without_inference_w
from scheduler.core.ledger import SiteLedger, claim_for
from tests.builders import NOW, a_job, a_site_power

PROGRAM = openadr.Program("dr", ("tx-1", "tx-2"), {"tx-1": 30e6, "tx-2": 10e6}, {1: 0.8, 2: 0.5, 3: 0.0}, market_node="HB_WEST")
START = datetime.fromtimestamp(NOW + 60, UTC)


def an_event(name="LOAD_DISPATCH", kind="delta", values=(4.0,), scale="M", targets=(), status="far", modification=0, duration_s=600):
    intervals = [{"dtstart": START + timedelta(seconds=i * duration_s), "duration": timedelta(seconds=duration_s), "signal_payload": v} for i, v in enumerate(values)]
    signal = {"signal_name": name, "signal_type": kind, "intervals": intervals, **({"measurement": {"unit": "W", "scale": scale}} if scale else {})}
    return {
        "event_descriptor": {"event_id": "e1", "modification_number": modification, "event_status": status},
        "active_period": {"dtstart": START, "duration": timedelta(seconds=duration_s * len(values)), "notification_period": timedelta(seconds=60)},
        "event_signals": [signal],
        "targets": [{"resource_id": t} for t in targets] or [{"ven_id": "ven-1"}],
    }


def test_a_dispatch_is_a_cap_below_each_sites_baseline_shared_by_baseline():
    adr = openadr.adr_event(an_event(values=(4.0,)))
    assert (adr.start, adr.end, adr.notification_s) == (NOW + 60, NOW + 660, 60.0)
    events = {e.site_id: e for e in openadr.grid_events(PROGRAM, adr)}
    assert events["tx-1"].cap_w == 27e6 and events["tx-2"].cap_w == 9e6  # 4 MW shed, 3:1
    assert events["tx-1"].event_id == "openadr-dr-e1-tx-1" and events["tx-1"].kind == GridEventKind.CAP_LIMIT
    assert events["tx-1"].start == NOW + 60 and events["tx-1"].end == NOW + 660 and "60 s notice" in events["tx-1"].reason


def test_a_dispatch_aimed_at_one_site_and_in_kw_caps_only_it():
    events = openadr.grid_events(PROGRAM, openadr.adr_event(an_event(values=(2000.0,), scale="k", targets=("tx-2",))))
    assert [(e.site_id, e.cap_w) for e in events] == [("tx-2", 8e6)]


def test_simple_levels_map_through_the_program_and_each_interval_holds_its_own_cap():
    events = openadr.grid_events(PROGRAM, openadr.adr_event(an_event("SIMPLE", "level", values=(1, 2), scale="")))
    start = NOW + 60
    assert [(e.event_id, e.cap_w, e.start, e.end) for e in events] == [
        ("openadr-dr-e1-tx-1-1", 24e6, start, start + 600),  # level 1: 80 % of the baseline for the first interval
        ("openadr-dr-e1-tx-1-2", 15e6, start + 600, start + 1200),  # level 2: half, for the second
        ("openadr-dr-e1-tx-2-1", 8e6, start, start + 600),
        ("openadr-dr-e1-tx-2-2", 5e6, start + 600, start + 1200),
    ]
    assert "interval 2 of 2" in events[1].reason
    assert openadr.caps(PROGRAM, openadr.adr_event(an_event("SIMPLE", "level", values=(1, 2), scale=""))) == {"tx-1": 15e6, "tx-2": 5e6}
    assert openadr.grid_events(PROGRAM, openadr.adr_event(an_event("SIMPLE", "level", values=(0,), scale=""))) == []
    only_second = openadr.grid_events(PROGRAM, openadr.adr_event(an_event("SIMPLE", "level", values=(0, 2), scale="")))
    assert [(e.event_id, e.start) for e in only_second] == [("openadr-dr-e1-tx-1", start + 600), ("openadr-dr-e1-tx-2", start + 600)]
    same = openadr.grid_events(PROGRAM, openadr.adr_event(an_event("SIMPLE", "level", values=(2, 2), scale="")))
    assert [(e.event_id, e.start, e.end) for e in same] == [("openadr-dr-e1-tx-1", start, start + 1200), ("openadr-dr-e1-tx-2", start, start + 1200)]
    held = [e.event_id for e in events + same] + ["openadr-dr-e1-x-tx-1", "openadr-dr-e10-tx-1", "openadr-other-e1-tx-1"]
    assert openadr.posted_by(PROGRAM, "e1", held) == sorted({e.event_id for e in events + same})  # not event e1-x's, e10's or another program's


def test_setpoints_capacity_and_prices():
    setpoint = openadr.grid_events(PROGRAM, openadr.adr_event(an_event(kind="setpoint", values=(20.0,))))
    assert {e.site_id: e.cap_w for e in setpoint} == {"tx-1": 15e6, "tx-2": 5e6}
    capacity = openadr.grid_events(PROGRAM, openadr.adr_event(an_event("LOAD_CONTROL", "x-loadControlCapacity", values=(0.25,), scale="")))
    assert {e.site_id: e.cap_w for e in capacity} == {"tx-1": 7.5e6, "tx-2": 2.5e6}
    price = openadr.grid_events(PROGRAM, openadr.adr_event(an_event("ELECTRICITY_PRICE", "price", values=(0.12, 0.3), scale="", duration_s=0)))
    assert [(e.kind, e.market_node, round(e.usd_per_mwh, 6), e.end) for e in price] == [(GridEventKind.PRICE, "HB_WEST", 300.0, FOREVER)]


def test_the_grid_is_told_when_the_vtn_issued_the_event_not_at_its_notification_period():
    created, modified = START - timedelta(seconds=300), START - timedelta(seconds=20)
    event = an_event()
    event["event_descriptor"]["created_date_time"] = created
    events = openadr.grid_events(PROGRAM, openadr.adr_event(event))
    assert {e.notified_at for e in events} == {NOW - 240}  # issued 300 s before its start, though its notification period says 60 s
    record = GridEventRecord(events[0], received_at=NOW + 30)  # delivered late (a slow poll): the notice is still the grid's
    assert record.notice_s == 300 and "60 s notice" in events[0].reason
    event["event_descriptor"].update(modification_number=1, modification_date_time=modified)
    assert {e.notified_at for e in openadr.grid_events(PROGRAM, openadr.adr_event(event))} == {NOW + 40}  # this version: when it was modified
    assert all(e.notified_at == 0 for e in openadr.grid_events(PROGRAM, openadr.adr_event(an_event())))  # not said: on receipt


def test_a_repost_under_the_same_modification_keeps_the_notice_first_received():
    first = openadr.grid_events(PROGRAM, openadr.adr_event(an_event()))[0]
    first = dataclasses.replace(first, notified_at=NOW - 240)
    restamped = dataclasses.replace(first, notified_at=NOW + 60)  # openleadr's VTN stamps createdDateTime again when the event goes active
    assert openadr.keep_notice(restamped, first) == first
    assert openadr.keep_notice(restamped, None) == restamped
    modified = dataclasses.replace(restamped, modification=1, cap_w=1e6)
    assert openadr.keep_notice(modified, first) == modified  # a new version carries its own notice


def test_the_modification_number_and_a_cancellation_are_read():
    adr = openadr.adr_event(an_event(status="cancelled", modification=3))
    assert adr.cancelled and all(e.modification == 3 for e in openadr.grid_events(PROGRAM, adr))


def test_opt_in_only_when_each_site_can_reach_its_cap_without_shedding_inference():
    events = openadr.grid_events(PROGRAM, openadr.adr_event(an_event(values=(4.0,))))
    opt = openadr.decide(events, {"tx-1": 20e6, "tx-2": 9e6})
    assert opt.opt_in and opt.opt_type == "optIn" and "tx-1 to 27.000 MW" in opt.reason
    out = openadr.decide(events, {"tx-1": 20e6, "tx-2": 9.5e6})
    assert not out.opt_in and "site tx-2 can come down to 9.500 MW without shedding inference; the event asks 9.000 MW" in out.reason
    assert not openadr.decide(events, {"tx-1": 1.0}).opt_in  # tx-2 is not connected


def test_the_floor_counts_mining_and_training_as_freeable_but_not_inference():
    site = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1000).with_gpus(64).build()
    mining = {f.fleet_id: f.max_w for f in site.fleets}
    empty = SiteLedger(site, site.cap_w, (), mining)
    assert floor_without_inference_w(empty) == (site.gpus * site.gpu_idle_w + site.mining_floor_w) * site.overhead
    training = dataclasses.replace(a_job().training(gpus=32).build(), state=JobState.RUNNING, site_id="tx-1", attempt=1)
    serving = dataclasses.replace(a_job().inference(replicas=1, gpus=32).build(), state=JobState.RUNNING, site_id="tx-1", attempt=1)
    with_training = SiteLedger(site, site.cap_w, (claim_for(training),), mining)
    assert floor_without_inference_w(with_training) == floor_without_inference_w(empty)  # training can be preempted
    with_inference = SiteLedger(site, site.cap_w, (claim_for(serving),), mining)
    assert floor_without_inference_w(with_inference) == floor_without_inference_w(empty) + with_inference.claim_it_w(claim_for(serving)) * site.overhead
