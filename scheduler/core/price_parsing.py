"""Price feed bodies -> PRICE grid events: the ERCOT public reports API's JSON and a plain CSV.

Owns the two shapes a price feed may answer with, and nothing about fetching them:

- `ercot_json`: the ERCOT public reports API (api.ercot.com/api/public-reports/...), an
  object with `_meta` (`totalPages`: `ercot_total_pages`), `fields` (a list of {name, ...}) and `data` (rows, each a list in
  the order of `fields`, or an object). Real-time settlement point prices
  (np6-905-cd/spp_node_zone_hub: deliveryDate, deliveryHour 1-24 (hour ending),
  deliveryInterval 1-4, settlementPoint, settlementPointPrice, DSTFlag) and day-ahead
  ones (np4-190-cd/dam_stlmnt_pnt_prices: deliveryDate, hourEnding "01:00".."24:00",
  settlementPoint, settlementPointPrice, DSTFlag). Times are Central Prevailing Time;
  DSTFlag marks the repeated hour when clocks go back.
- `csv`: a header line with `interval_start,market_node,usd_per_mwh` (other columns are
  ignored), one row per node and interval; ISO 8601 times, naive ones read as UTC.

Each (node, interval) becomes one open-ended PRICE event starting at the interval's start
(UTC epoch seconds), as the simulator posts them: the newest started one is in force until
a newer one starts (grid.price_now). Day-ahead prices are forecasts (`forecast=True`), for
future intervals too. Ids are stable, `rt-<node>-<start>` or `da-<node>-<start>`: posting the
same interval again is idempotent. Only the nodes asked for are kept. A malformed body
raises PriceBodyError, one line naming what is wrong. Pure: no I/O, no clock.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

from scheduler.core.grid import GridEvent, GridEventKind

FORMATS = ("ercot_json", "csv")
CENTRAL = ZoneInfo("America/Chicago")  # ERCOT's Central Prevailing Time
CSV_COLUMNS = ("interval_start", "market_node", "usd_per_mwh")
_NODE_FIELDS = ("settlementPoint", "settlementPointName")


class PriceBodyError(ValueError):
    """A feed's body that is not of its shape (the message is one line)."""


def price_event_id(market_node: str, start: float, forecast: bool) -> str:
    return f"{'da' if forecast else 'rt'}-{market_node}-{int(start)}"


def price_event(market_node: str, start: float, usd_per_mwh: float, forecast: bool, reason: str = "") -> GridEvent:
    return GridEvent(
        price_event_id(market_node, start, forecast),
        GridEventKind.PRICE,
        start,
        market_node=market_node,
        usd_per_mwh=usd_per_mwh,
        forecast=forecast,
        reason=reason,
    )


def ercot_total_pages(body: bytes | str) -> int:
    """How many pages the ERCOT API's answer says there are (`_meta.totalPages`; 1 when it
    does not say). The pages after the first are fetched with `page=2`, `page=3`, ..."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        return 1  # parse_prices says what is wrong with it
    meta = doc.get("_meta") if isinstance(doc, dict) else None
    total = meta.get("totalPages") if isinstance(meta, dict) else None
    return total if isinstance(total, int) and total >= 1 else 1


def parse_prices(body: bytes | str, fmt: str, market_nodes: Iterable[str], forecast: bool, reason: str = "") -> list[GridEvent]:
    """The PRICE events in a feed's body for `market_nodes`, oldest first."""
    text = body.decode("utf-8-sig", errors="replace") if isinstance(body, bytes) else body
    nodes = frozenset(market_nodes)
    if fmt == "ercot_json":
        points = _ercot_points(text, nodes)
    elif fmt == "csv":
        points = _csv_points(text, nodes)
    else:
        raise PriceBodyError(f"unknown price format {fmt!r} (known: {', '.join(FORMATS)})")
    events: dict[str, GridEvent] = {}
    for where, node, start, price in points:
        event = price_event(node, start, price, forecast, reason)
        seen = events.get(event.event_id)
        if seen is not None and seen.usd_per_mwh != price:
            raise PriceBodyError(f"{where}: {node} at {_utc(start)} is priced twice ({seen.usd_per_mwh} and {price})")
        events[event.event_id] = event
    return sorted(events.values(), key=lambda e: (e.start, e.market_node))


# ----------------------------------------------------------------- ERCOT JSON
def _ercot_points(text: str, nodes: frozenset[str]) -> list[tuple[str, str, float, float]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise PriceBodyError(f"ERCOT JSON: not JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(doc, dict):
        raise PriceBodyError(f"ERCOT JSON: the body is a {type(doc).__name__}, not an object with fields and data")
    fields, rows = doc.get("fields"), doc.get("data")
    if not isinstance(fields, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in fields):
        raise PriceBodyError("ERCOT JSON: `fields` must be a list of objects with a name")
    if not isinstance(rows, list):
        raise PriceBodyError("ERCOT JSON: `data` must be a list of rows")
    names = [f["name"] for f in fields]
    node_field = next((n for n in _NODE_FIELDS if n in names), None)
    hourly = "deliveryInterval" not in names
    hour_field = "hourEnding" if "hourEnding" in names else "deliveryHour"
    needed = ["deliveryDate", hour_field, "settlementPointPrice", *([] if hourly else ["deliveryInterval"])]
    missing = [n for n in needed if n not in names] + ([] if node_field else ["settlementPoint"])
    if missing:
        raise PriceBodyError(f"ERCOT JSON: `fields` lacks {', '.join(missing)}")
    points = []
    for number, row in enumerate(rows, 1):
        where = f"ERCOT JSON: data row {number}"
        record = _record(row, names, where)
        node = record.get(node_field)
        if node not in nodes:
            continue
        day = _date(record.get("deliveryDate"), where)
        hour = _hour_ending(record.get(hour_field), hour_field, where)
        quarter = 1 if hourly else _int_in(record.get("deliveryInterval"), "deliveryInterval", 1, 4, where)
        wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=hour - 1, minutes=15 * (quarter - 1))
        start = wall.replace(tzinfo=CENTRAL, fold=1 if _flag(record.get("DSTFlag")) else 0).timestamp()
        points.append((where, node, start, _price(record.get("settlementPointPrice"), "settlementPointPrice", where)))
    return points


def _record(row: object, names: list[str], where: str) -> Mapping:
    if isinstance(row, dict):
        return row
    if isinstance(row, list) and len(row) == len(names):
        return dict(zip(names, row))
    if isinstance(row, list):
        raise PriceBodyError(f"{where}: {len(row)} values for {len(names)} fields")
    raise PriceBodyError(f"{where}: a {type(row).__name__}, not a list or an object")


def _date(value: object, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise PriceBodyError(f"{where}: deliveryDate {value!r} is not a date (YYYY-MM-DD)") from None


def _hour_ending(value: object, field: str, where: str) -> int:
    """1-24: an hour ending given as a number or as "HH:00"."""
    text = str(value)
    return _int_in(value, field, 1, 24, where, text[:-3] if field == "hourEnding" and text.endswith(":00") else text)


def _int_in(value: object, field: str, low: int, high: int, where: str, text: str | None = None) -> int:
    try:
        number = int(str(value) if text is None else text)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise PriceBodyError(f"{where}: {field} {value!r} is not a whole number {low}-{high}")
    return number


def _flag(value: object) -> bool:
    return value is True or str(value).strip().upper() in ("Y", "TRUE")


# ----------------------------------------------------------------- CSV
def _csv_points(text: str, nodes: frozenset[str]) -> list[tuple[str, str, float, float]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise PriceBodyError(f"CSV: the header line lacks {', '.join(missing)} (it needs {','.join(CSV_COLUMNS)})")
    reader.fieldnames = header
    points = []
    try:
        for row in reader:
            where = f"CSV: line {reader.line_num}"
            extra = row.pop(None, None) or []  # type: ignore[call-overload]
            given = sum(v is not None for v in row.values()) + len(extra)
            if given != len(header):
                raise PriceBodyError(f"{where}: {given} values for {len(header)} columns")
            node = row["market_node"].strip()
            if node not in nodes:
                continue
            points.append((where, node, _iso_time(row["interval_start"], where), _price(row["usd_per_mwh"], "usd_per_mwh", where)))
    except csv.Error as err:
        raise PriceBodyError(f"CSV: line {reader.line_num}: {err}") from None
    return points


def _iso_time(value: str, where: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise PriceBodyError(f"{where}: interval_start {value!r} is not an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


# ----------------------------------------------------------------- both
def _price(value: object, field: str, where: str) -> float:
    try:
        price = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        price = math.nan
    if not math.isfinite(price):
        raise PriceBodyError(f"{where}: {field} {value!r} is not a finite number")
    return price


def _utc(start: float) -> str:
    return dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
