"""Operator commands for grid events: `powerplane grid-event` posts one (or a
modification of one: the same --id with a higher --modification), `powerplane
grid-event-end` ends one early, `powerplane grid-events` lists them with how each was met."""

from __future__ import annotations

import math
import re
import time
import uuid

from scheduler.api.convert import MAX_TIMESTAMP_S, timestamp
from scheduler.api.v1 import operator_pb2
from scheduler.cli import render
from scheduler.core.power import watts_text

KINDS = {
    "cap": operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
    "price": operator_pb2.GRID_EVENT_KIND_PRICE,
    "emergency": operator_pb2.GRID_EVENT_KIND_EMERGENCY,
    "hashprice": operator_pb2.GRID_EVENT_KIND_HASHPRICE,
}
_RELATIVE = re.compile(r"^([+-])(\d+(?:\.\d+)?)([smh])$")


def when(text: str, now: float) -> float:
    """'+90s', '+10m', '+2h' from now ('-5m': ago), or seconds since the epoch."""
    match = _RELATIVE.match(text)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        value = now + sign * float(match.group(2)) * {"s": 1, "m": 60, "h": 3600}[match.group(3)]
    else:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if not 0 <= value <= MAX_TIMESTAMP_S:  # NaN fails too
        raise SystemExit(f"powerplane: {text!r} is not a time: use +90s, +10m, +2h, -5m or epoch seconds (up to year 9999)")
    return value


def add_parsers(sub) -> None:
    p = sub.add_parser("grid-event", help="post a grid event: a cap limit, a price, an emergency or the hashprice")
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("--id", default="", help="the event's id (idempotent: the same id is the same event); default: a new one")
    p.add_argument("--site", default="", help="cap, emergency: the site")
    p.add_argument("--cap-mw", type=float, default=0.0, help="cap: the site's cap at the meter, MW")
    p.add_argument("--start", default="", help="when it starts: +90s, +10m, epoch seconds (default now)")
    p.add_argument("--end", default="", help="when it ends (default: open)")
    p.add_argument("--respond-by", default="", help="cap: load under the cap by then (default: at start)")
    p.add_argument("--notified-at", default="", help="when the grid told of it, its notice: -5m, epoch seconds (default: now)")
    p.add_argument("--node", default="", help="price: the market node, e.g. HB_WEST")
    p.add_argument("--usd-per-mwh", type=float, default=0.0, help="price: USD/MWh")
    p.add_argument("--forecast", action="store_true", help="price: a day-ahead forecast, not a real-time price")
    p.add_argument("--usd-per-ph-day", type=float, default=0.0, help="hashprice: USD/PH/day")
    p.add_argument("--reason", default="", help="e.g. 'ERCOT EEA2', '4CP peak'")
    p.add_argument("--modification", type=int, default=0, help="with the id of an event posted before: a higher number replaces its content")
    p.set_defaults(func=post)
    p = sub.add_parser("grid-event-end", help="end a grid event early (a cut ended lets mining back)")
    p.add_argument("event_id")
    p.add_argument("--at", default="", help="when it ends: +90s, +10m, epoch seconds (default now)")
    p.add_argument("--reason", default="", help="why it ends early (kept in its record, with who ended it)")
    p.set_defaults(func=end)
    p = sub.add_parser("grid-events", help="list grid events and how each was met")
    p.add_argument("--site", default="")
    p.add_argument("--active", action="store_true", help="only upcoming and active events")
    p.add_argument("--response", action="store_true", help="show each event's response steps")
    p.set_defaults(func=list_events)


def post(client, args) -> int:
    now = time.time()
    event = operator_pb2.GridEvent(
        event_id=args.id or f"cli-{uuid.uuid4().hex[:12]}",
        kind=KINDS[args.kind],
        site_id=args.site,
        cap_w=args.cap_mw * 1e6,
        market_node=args.node,
        usd_per_mwh=args.usd_per_mwh,
        forecast=args.forecast,
        hashprice_usd_per_ph_day=args.usd_per_ph_day,
        reason=args.reason,
        modification=args.modification,
    )
    if args.modification and not args.id:
        raise SystemExit("powerplane: --modification changes an event posted before: give its --id")
    for field, text in (("start", args.start), ("end", args.end), ("respond_by", args.respond_by), ("notified_at", args.notified_at)):
        if text:
            getattr(event, field).CopyFrom(timestamp(when(text, now)))
    status = client.post_grid_event(event)
    print(render.as_json(status) if args.output == "json" else events_table([status]))
    return 0


def end(client, args) -> int:
    status = client.end_grid_event(args.event_id, when(args.at, time.time()) if args.at else None, args.reason)
    print(render.as_json(status) if args.output == "json" else events_table([status], with_response=True))
    return 0


def what(event: operator_pb2.GridEvent) -> str:
    """What an event asks for, in a few words (the grid events tables here and in `top`)."""
    match event.kind:
        case operator_pb2.GRID_EVENT_KIND_CAP_LIMIT:
            return f"cap {watts_text(event.cap_w)}"
        case operator_pb2.GRID_EVENT_KIND_PRICE:
            return f"{'forecast' if event.forecast else 'price'} {event.usd_per_mwh:.2f} USD/MWh @ {event.market_node}"
        case operator_pb2.GRID_EVENT_KIND_EMERGENCY:
            return "emergency: shed flexible load"
        case _:
            return f"hashprice {event.hashprice_usd_per_ph_day:.2f} USD/PH/day"


def events_table(statuses, with_response: bool = False) -> str:
    rows = []
    for s in statuses:
        e = s.event
        end = render.when(e.end) if e.HasField("end") else "open"
        state = render.state_name(s.state, operator_pb2.GridEventState) + (" (early)" if s.HasField("ended_at") else "")
        asks = what(e) + (f" (mod {e.modification})" if e.modification else "")
        rows.append([e.event_id, e.site_id or "-", asks, state, render.when(e.start), end, met_text(s), e.reason])
    text = render.table(["EVENT", "SITE", "WHAT", "STATE", "START", "END", "MET", "REASON"], rows)
    if with_response:
        for s in statuses:
            if s.response:
                text += f"\n\n{s.event.event_id}:\n" + "\n".join(f"  {line}" for line in s.response)
    return text


def met_text(status) -> str:
    """yes / no, and for a cap how far and how long it was not (a cut with little notice can
    be physically impossible to meet at once); a cap below the site's floor says so."""
    if status.below_floor:
        return f"no: below the site's floor {watts_text(status.floor_w)}"
    if status.met or not status.max_excess_w:
        return "yes" if status.met else "no"
    return f"no: {status.over_cap_s:.0f} s over, up to {watts_text(status.max_excess_w)}"


def list_events(client, args) -> int:
    found = list(client.grid_events(args.site, args.active).events)
    print(render.as_json(found) if args.output == "json" else events_table(found, args.response))
    return 0
