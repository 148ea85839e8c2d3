"""Price feeds in the core: the ERCOT JSON and CSV bodies parsed into PRICE events
(core/price_parsing.py), and mining falling back to its floor when a watched price goes
stale (core/price_watch.py, through the power state machine)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from scheduler.core.grid import GridEventKind
from scheduler.core.job_table import JobTable
from scheduler.core.power_state import DispatchDue, GridEventPosted, PowerSettings, PowerState, SiteAttached
from scheduler.core.price_parsing import PriceBodyError, parse_prices, price_event
from scheduler.core.price_watch import PriceWatch, node_price
from tests.builders import NOW, a_site_power

RT_FIELDS = ["deliveryDate", "deliveryHour", "deliveryInterval", "settlementPoint", "settlementPointType", "settlementPointPrice", "DSTFlag"]
DA_FIELDS = ["deliveryDate", "hourEnding", "settlementPoint", "settlementPointPrice", "DSTFlag"]


def ercot(fields: list[str], rows: list[list]) -> str:
    meta = {"totalRecords": len(rows), "pageSize": 1000, "totalPages": 1, "currentPage": 1}
    return json.dumps({"_meta": meta, "report": {}, "fields": [{"name": n, "label": n, "dataType": "VARCHAR"} for n in fields], "data": rows})


def utc(*args) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


# ----------------------------------------------------------------- parsing
def test_real_time_rows_become_open_ended_prices_at_their_interval_start_in_utc():
    body = ercot(
        RT_FIELDS,
        [
            ["2024-06-01", 1, 1, "HB_SOUTH", "HU", 17.69, False],
            ["2024-06-01", 14, 3, "HB_SOUTH", "HU", 31.5, False],
            ["2024-06-01", 1, 1, "HB_WEST", "HU", 9.0, False],
        ],
    )
    events = parse_prices(body, "ercot_json", ["HB_SOUTH"], forecast=False)
    assert [(e.start, e.usd_per_mwh, e.forecast, e.kind) for e in events] == [
        (utc(2024, 6, 1, 5, 0), 17.69, False, GridEventKind.PRICE),  # 00:00 CDT = 05:00 UTC
        (utc(2024, 6, 1, 18, 30), 31.5, False, GridEventKind.PRICE),  # hour ending 14, 3rd quarter: 13:30 CDT
    ]
    assert events[0].event_id == f"rt-HB_SOUTH-{int(utc(2024, 6, 1, 5))}" and events[0].end == float("inf")


def test_day_ahead_rows_are_forecasts_and_the_repeated_hour_is_told_apart_by_its_dst_flag():
    rows = [["2024-11-03", "02:00", "HB_SOUTH", 20.0, "N"], ["2024-11-03", "02:00", "HB_SOUTH", 21.0, "Y"], ["2024-11-04", "24:00", "HB_SOUTH", 30.0, "N"]]
    events = parse_prices(ercot(DA_FIELDS, rows), "ercot_json", ["HB_SOUTH"], forecast=True)
    assert [(e.start, e.usd_per_mwh) for e in events] == [(utc(2024, 11, 3, 6), 20.0), (utc(2024, 11, 3, 7), 21.0), (utc(2024, 11, 5, 5), 30.0)]
    assert all(e.forecast and e.event_id.startswith("da-HB_SOUTH-") for e in events)


def test_the_same_body_gives_the_same_ids_and_rows_given_as_objects_read_alike():
    rows = [["2024-06-01", 2, 4, "HB_SOUTH", "HU", -3.25, False]]
    as_objects = json.dumps({"fields": [{"name": n} for n in RT_FIELDS], "data": [dict(zip(RT_FIELDS, rows[0]))]})
    first = parse_prices(ercot(RT_FIELDS, rows), "ercot_json", ["HB_SOUTH"], False)
    assert first == parse_prices(ercot(RT_FIELDS, rows), "ercot_json", ["HB_SOUTH"], False) == parse_prices(as_objects, "ercot_json", ["HB_SOUTH"], False)


def test_csv_rows_become_prices_naive_times_read_as_utc():
    body = "interval_start,market_node,usd_per_mwh,note\n2025-01-01T00:00:00,HB_SOUTH,25.5,x\n2025-01-01T00:15:00-06:00,HB_SOUTH,26,y\n2025-01-01T00:00:00,HB_WEST,1,z\n"
    events = parse_prices(body, "csv", ["HB_SOUTH"], forecast=False)
    assert [(e.start, e.usd_per_mwh) for e in events] == [(utc(2025, 1, 1), 25.5), (utc(2025, 1, 1, 6, 15), 26.0)]


@pytest.mark.parametrize(
    ("body", "fmt", "says"),
    [
        ("<html>busy</html>", "ercot_json", "ERCOT JSON: not JSON"),
        ("[1, 2]", "ercot_json", "not an object with fields and data"),
        (json.dumps({"fields": [{"name": "deliveryDate"}], "data": []}), "ercot_json", "`fields` lacks deliveryHour, settlementPointPrice, settlementPoint"),
        (json.dumps({"fields": "x", "data": []}), "ercot_json", "`fields` must be a list"),
        (json.dumps({"fields": [{"name": n} for n in RT_FIELDS]}), "ercot_json", "`data` must be a list"),
        (
            ercot(RT_FIELDS, [["2024-06-01", 1, 1, "HB_SOUTH", "HU", "n/a", False]]),
            "ercot_json",
            "data row 1: settlementPointPrice 'n/a' is not a finite number",
        ),
        (ercot(RT_FIELDS, [["2024-06-01", 25, 1, "HB_SOUTH", "HU", 1.0, False]]), "ercot_json", "data row 1: deliveryHour 25 is not a whole number 1-24"),
        (ercot(RT_FIELDS, [["2024-06-01", 1, 5, "HB_SOUTH", "HU", 1.0, False]]), "ercot_json", "deliveryInterval 5 is not a whole number 1-4"),
        (ercot(RT_FIELDS, [["06/01/2024", 1, 1, "HB_SOUTH", "HU", 1.0, False]]), "ercot_json", "deliveryDate '06/01/2024' is not a date"),
        (ercot(RT_FIELDS, [["2024-06-01", 1, 1, "HB_SOUTH"]]), "ercot_json", "data row 1: 4 values for 7 fields"),
        (
            ercot(RT_FIELDS, [["2024-06-01", 1, 1, "HB_SOUTH", "HU", 1.0, False], ["2024-06-01", 1, 1, "HB_SOUTH", "HU", 2.0, False]]),
            "ercot_json",
            "priced twice",
        ),
        ("time,node,price\n", "csv", "CSV: the header line lacks interval_start, market_node, usd_per_mwh"),
        ("interval_start,market_node,usd_per_mwh\nyesterday,HB_SOUTH,1\n", "csv", "CSV: line 2: interval_start 'yesterday' is not an ISO 8601 time"),
        ("interval_start,market_node,usd_per_mwh\n2025-01-01T00:00:00,HB_SOUTH,inf\n", "csv", "CSV: line 2: usd_per_mwh 'inf' is not a finite number"),
        ("interval_start,market_node,usd_per_mwh\n2025-01-01T00:00:00,HB_SOUTH\n", "csv", "CSV: line 2: 2 values for 3 columns"),
        ("", "xml", "unknown price format 'xml'"),
    ],
)
def test_a_malformed_body_is_refused_in_one_line_naming_what_is_wrong(body, fmt, says):
    with pytest.raises(PriceBodyError) as caught:
        parse_prices(body, fmt, ["HB_SOUTH"], forecast=False)
    assert says in str(caught.value) and "\n" not in str(caught.value)


# ----------------------------------------------------------------- staleness
RT = PriceWatch("ercot-rt", "HB_SOUTH", forecast=False, stale_after_s=1800)
DA = PriceWatch("ercot-da", "HB_SOUTH", forecast=True, stale_after_s=7200)


def test_a_watched_price_older_than_stale_after_is_dropped_and_a_node_left_without_any_is_unknown():
    events = [price_event("HB_SOUTH", NOW, 40.0, False), price_event("HB_SOUTH", NOW, 30.0, True)]
    assert node_price(events, [RT, DA], "HB_SOUTH", NOW + 1800) == node_price(events, [], "HB_SOUTH", NOW + 1800)  # fresh: as unwatched
    assert node_price(events, [RT, DA], "HB_SOUTH", NOW + 1801).real_time is None  # real-time stale, day-ahead still fresh
    assert node_price(events, [RT, DA], "HB_SOUTH", NOW + 1801).forecast == 30.0
    late = node_price(events, [RT, DA], "HB_SOUTH", NOW + 7201)
    assert late.unknown and late.stale == ("ercot-rt", "ercot-da")
    assert not node_price(events, [], "HB_SOUTH", NOW + 10**6).unknown  # prices posted by hand never go stale
    assert node_price([], [RT], "HB_SOUTH", NOW).unknown  # a watched node with no price yet


def test_keep_last_keeps_dispatching_on_the_last_price():
    keep = PriceWatch("ercot-rt", "HB_SOUTH", forecast=False, stale_after_s=1800, keep_last=True)
    price = node_price([price_event("HB_SOUTH", NOW, 40.0, False)], [keep], "HB_SOUTH", NOW + 3600)
    assert (price.real_time, price.unknown, price.stale) == (40.0, False, ("ercot-rt",))


def mining_targets(power: PowerState, jobs: JobTable, at: float) -> dict[str, float]:
    power.handle(DispatchDue(sweep=True), jobs, at)
    return power.sites["tx-1"].targets


def test_the_mining_decision_falls_back_to_the_floor_when_the_feed_goes_stale_and_back_when_prices_return():
    site = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1000, "s21").at_node("HB_SOUTH").build()
    floor, full = site.fleets[0].standby_w, site.fleets[0].max_w
    power, jobs = PowerState(PowerSettings(price_watches=(RT,))), JobTable()
    power.handle(SiteAttached("tx-1", site), jobs, NOW)
    power.handle(GridEventPosted(price_event("HB_SOUTH", NOW, 20.0, False), frozenset({"tx-1"})), jobs, NOW)
    assert mining_targets(power, jobs, NOW + 60)["s21"] == pytest.approx(full)  # a cheap, fresh price: mining runs
    assert mining_targets(power, jobs, NOW + 1801)["s21"] == pytest.approx(floor)  # stale: held at its floor
    power.handle(GridEventPosted(price_event("HB_SOUTH", NOW + 1800, 20.0, False), frozenset({"tx-1"})), jobs, NOW + 1900)
    assert mining_targets(power, jobs, NOW + 1901)["s21"] == pytest.approx(full)  # prices again: back up
