"""OpenADR 2.0b events as grid events, and whether to opt in: the pure half of the VEN
(scheduler/server/openadr_ven.py holds the openleadr client and does the I/O).

`adr_event` reads an event as openleadr hands it to a VEN (a dict of
event_descriptor, active_period, event_signals, targets; datetimes and timedeltas) into
plain types. `grid_events` turns it into the grid events of the program's sites:
- SIMPLE (levels 0-3): the site's cap is `levels[level]` x its stated baseline (level 0,
  or a level the program does not map: no cap);
- LOAD_DISPATCH / LOAD_CONTROL, an amount (W x the signal's scale: kW, MW): `delta` or
  `x-loadControlLevelOffset` sheds that much from the baseline, `setpoint`/`level` or
  `x-loadControlSetpoint` holds load at it; `x-loadControlCapacity` is a share of the
  baseline and `x-loadControlPercentOffset` a percent change of it. An amount aimed at
  several sites is split between them in proportion to their baselines;
- ELECTRICITY_PRICE: a PRICE event at the program's market node (per kWh unless the
  signal's unit says MWh).
An event whose cap changes from interval to interval becomes one grid event per
stretch of equal cap per site (`cap_pieces`: at each moment the strictest of its cap
signals; stretches asking no cap, such as SIMPLE level 0, have none), so a site is held
only as low as each interval asks, when it asks it; a price becomes one PRICE event at
the highest interval's price. Grid event ids are stable (`openadr-<program>-<event>-<site>`,
and `-<n>` for the n-th stretch when a site has several), the OpenADR
modificationNumber is the grid event's `modification`, so a modified event modifies the
grid event and a repost is a no-op; the VEN ends the stretches a modification drops
(`posted_by`).

The grid events' `notified_at` (when the grid told of them) is when the VTN issued this
version of the event: its descriptor's modificationDateTime when it has one, else its
createdDateTime (openleadr's VEN hands both over as datetimes; 0, on receipt, when
neither is given). The notification period (x-eiNotification) is what the program
promises, not when this event was told, so it stays in the reason text. openleadr's VTN
stamps createdDateTime afresh whenever the event's status moves on (far to active), so
an event delivered again under the same modification number (a VEN restarted on a new
leader) can carry a later time: `keep_notice` keeps the notice first received.

`decide` opts in when every site the event caps can come down to its cap without
shedding inference (its floor: what is left once the ladder has taken mining to its
floor and training capped and preempted, `ladder.floor_without_inference_w`), else out,
with the reason either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.core.grid import FOREVER, GridEvent, GridEventKind
from scheduler.core.power import watts_text

CAP_SIGNALS = ("SIMPLE", "simple", "LOAD_DISPATCH", "LOAD_CONTROL")
PRICE_SIGNALS = ("ELECTRICITY_PRICE",)
SCALES = {"none": 1.0, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
TOLERANCE_W = 1.0


@dataclass(frozen=True)
class Program:
    """A demand-response program the operator enrolled sites in (config `openadr.programs`)."""

    name: str
    sites: tuple[str, ...]
    baseline_w: Mapping[str, float]  # site -> the load it states to the program (meter W)
    levels: Mapping[int, float]  # SIMPLE level -> the share of its baseline a site may draw
    market_node: str = ""  # where ELECTRICITY_PRICE signals are posted as prices


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    value: float


@dataclass(frozen=True)
class Signal:
    name: str
    type: str
    intervals: tuple[Interval, ...]
    scale: float = 1.0  # what one unit of a value is in W (kW: 1e3); prices: USD/MWh per unit
    per_kwh: bool = True  # prices: per kWh (else per MWh)


@dataclass(frozen=True)
class AdrEvent:
    event_id: str
    modification: int
    status: str  # far, near, active, completed, cancelled
    start: float
    end: float  # FOREVER for an open duration (0)
    notification_s: float
    signals: tuple[Signal, ...]
    resources: tuple[str, ...] = ()  # resource ids it targets (site ids); empty: the whole program
    issued_at: float = 0.0  # when the VTN issued this version (modificationDateTime, else createdDateTime); 0: not said

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


def _seconds(value) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value or 0.0)


def _epoch(value) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _issued_at(descriptor: Mapping) -> float:
    """When the VTN issued this version of the event (0: it does not say)."""
    for key in ("modification_date_time", "created_date_time"):
        if descriptor.get(key):
            return max(0.0, _epoch(descriptor[key]))
    return 0.0


def adr_event(event: Mapping) -> AdrEvent:
    """An event dict as openleadr's VEN receives it, as plain types."""
    descriptor, period = event["event_descriptor"], event["active_period"]
    start = _epoch(period["dtstart"])
    duration = _seconds(period.get("duration"))
    signals = []
    for sig in event.get("event_signals") or ():
        measurement = sig.get("measurement") or {}
        unit = f"{measurement.get('unit', '')} {measurement.get('description', '')}".lower()
        intervals, at = [], start
        for interval in sig.get("intervals") or ():
            at = _epoch(interval["dtstart"]) if interval.get("dtstart") else at
            length = _seconds(interval.get("duration"))
            intervals.append(Interval(at, at + length if length else FOREVER, float(interval["signal_payload"])))
            at += length
        scale = SCALES.get(measurement.get("scale") or "none", 1.0)
        signals.append(Signal(sig["signal_name"], sig["signal_type"], tuple(intervals), scale, "mwh" not in unit))
    targets = event.get("targets") or ()
    resources = tuple(t["resource_id"] for t in targets if isinstance(t, Mapping) and t.get("resource_id"))
    return AdrEvent(
        event_id=descriptor["event_id"],
        modification=int(descriptor.get("modification_number") or 0),
        status=descriptor.get("event_status") or "far",
        start=start,
        end=start + duration if duration else FOREVER,
        notification_s=_seconds(period.get("notification_period")),
        signals=tuple(signals),
        resources=resources,
        issued_at=_issued_at(descriptor),
    )


def sites_of(program: Program, event: AdrEvent) -> tuple[str, ...]:
    """The program's sites the event is for (its resource targets, or all of them)."""
    named = [s for s in program.sites if s in event.resources]
    return tuple(named) if named else program.sites


def _caps_for(program: Program, signal: Signal, value: float, sites: tuple[str, ...]) -> dict[str, float]:
    """Each site's cap for one interval value of a cap signal ({}: the signal asks no cap)."""
    baseline = {s: program.baseline_w.get(s, 0.0) for s in sites}
    total = sum(baseline.values()) or 1.0
    share = {s: w / total for s, w in baseline.items()}
    amount = value * signal.scale
    match signal.name.upper(), signal.type:
        case "SIMPLE", _:
            level = int(round(value))
            if level <= 0 or level not in program.levels:
                return {}
            return {s: baseline[s] * program.levels[level] for s in sites}
        case _, ("delta" | "x-loadControlLevelOffset"):
            shed = abs(amount)
            return {s: baseline[s] - shed * share[s] for s in sites}
        case _, ("setpoint" | "level" | "x-loadControlSetpoint"):
            return {s: amount * share[s] for s in sites}
        case _, "x-loadControlCapacity":
            return {s: baseline[s] * value for s in sites}
        case _, "x-loadControlPercentOffset":
            return {s: baseline[s] * (1 + value / 100.0) for s in sites}
    return {}


def caps(program: Program, event: AdrEvent) -> dict[str, float]:
    """Each site's cap over the event (its strictest interval), meter W, never below 0."""
    out: dict[str, float] = {}
    for site, pieces in cap_pieces(program, event).items():
        out[site] = min(cap for _, _, cap in pieces)
    return out


def cap_pieces(program: Program, event: AdrEvent) -> dict[str, list[tuple[float, float, float]]]:
    """Per site, the stretches of the event with a cap: (start, end, cap W, never below 0),
    in time order; at each moment the strictest cap of the signals' intervals then, and
    neighbouring stretches of the same cap as one."""
    sites = sites_of(program, event)
    spans = [(i.start, min(i.end, event.end), signal, i.value) for signal in event.signals if signal.name.upper() in CAP_SIGNALS for i in signal.intervals]
    edges = sorted({t for start, end, _, _ in spans for t in (start, end)})
    out: dict[str, list[tuple[float, float, float]]] = {}
    for start, end in zip(edges, edges[1:]):
        for site in sites:
            asked = [c for a, b, signal, value in spans if a <= start and end <= b for s, c in _caps_for(program, signal, value, sites).items() if s == site]
            if not asked:
                continue
            cap = max(0.0, min(asked))
            pieces = out.setdefault(site, [])
            if pieces and pieces[-1][1] == start and abs(pieces[-1][2] - cap) <= TOLERANCE_W:
                pieces[-1] = (pieces[-1][0], end, pieces[-1][2])
            else:
                pieces.append((start, end, cap))
    return out


def price_usd_per_mwh(event: AdrEvent) -> float | None:
    """The event's highest price, USD/MWh (None: it has no price signal)."""
    prices = [i.value * (1000.0 if s.per_kwh else 1.0) for s in event.signals if s.name.upper() in PRICE_SIGNALS for i in s.intervals]
    return max(prices) if prices else None


def grid_event_id(program: Program, event_id: str, site_id: str = "", piece: int = 0) -> str:
    return "-".join(p for p in ("openadr", program.name, event_id, site_id, str(piece) if piece else "") if p)


def event_prefix(program: Program, event_id: str) -> str:
    """What every grid event id an OpenADR event posts starts with."""
    return grid_event_id(program, event_id) + "-"


def posted_by(program: Program, event_id: str, grid_event_ids: Iterable[str]) -> list[str]:
    """Those of `grid_event_ids` that this OpenADR event posts or may have posted (a cap
    per site and stretch, its price): not another event's whose id starts the same."""
    prefix = event_prefix(program, event_id)
    price = grid_event_id(program, event_id)

    def ours(grid_id: str) -> bool:
        if grid_id == price:
            return True
        rest = grid_id[len(prefix) :] if grid_id.startswith(prefix) else None
        if rest is None:
            return False
        site, _, piece = rest.rpartition("-")
        return rest in program.sites or (site in program.sites and piece.isdigit())

    return sorted(i for i in grid_event_ids if ours(i))


def grid_events(program: Program, event: AdrEvent) -> list[GridEvent]:
    """The grid events an OpenADR event becomes (cap limits per site and stretch; a price at the node)."""
    notice = f", {event.notification_s:g} s notice" if event.notification_s else ""
    reason = f"OpenADR {program.name} event {event.event_id}{notice}"
    out = []
    for site, pieces in sorted(cap_pieces(program, event).items()):
        for n, (start, end, cap) in enumerate(pieces, start=1):
            piece = n if len(pieces) > 1 else 0
            why = f"{reason}, interval {n} of {len(pieces)}" if piece else reason
            out.append(
                GridEvent(grid_event_id(program, event.event_id, site, piece), GridEventKind.CAP_LIMIT, start, end, site_id=site, cap_w=cap,
                          reason=why, modification=event.modification, notified_at=event.issued_at)
            )
    price = price_usd_per_mwh(event)
    if price is not None and program.market_node:
        out.append(GridEvent(grid_event_id(program, event.event_id), GridEventKind.PRICE, event.start, event.end, market_node=program.market_node,
                             usd_per_mwh=price, reason=reason, modification=event.modification, notified_at=event.issued_at))
    return out


def keep_notice(event: GridEvent, held: GridEvent | None) -> GridEvent:
    """`event` as it is to be posted: under the modification number already held, with the
    notice first received (a VTN may stamp a repost of the same version later)."""
    if held is not None and held.modification == event.modification and held.notified_at != event.notified_at:
        return dataclasses.replace(event, notified_at=held.notified_at)
    return event


@dataclass(frozen=True)
class Opt:
    opt_in: bool
    reason: str

    @property
    def opt_type(self) -> str:
        return "optIn" if self.opt_in else "optOut"


def decide(events: list[GridEvent], floors: Mapping[str, float | None]) -> Opt:
    """Opt in when every capped site's floor without shedding inference (None: the site is
    not connected or does not manage power) is at or under its cap."""
    short, met = [], []
    for event in events:
        if event.kind != GridEventKind.CAP_LIMIT:
            continue
        floor = floors.get(event.site_id)
        if floor is None:
            short.append(f"site {event.site_id} is not connected or does not manage power")
        elif floor > event.cap_w + TOLERANCE_W:
            short.append(f"site {event.site_id} can come down to {watts_text(floor)} without shedding inference; the event asks {watts_text(event.cap_w)}")
        else:
            met.append(f"{event.site_id} to {watts_text(event.cap_w)} (floor {watts_text(floor)})")
    if short:
        return Opt(False, "; ".join(short))
    if not met:
        return Opt(True, "no cap asked (a price or level 0)")
    return Opt(True, "can deliver without shedding inference: " + ", ".join(met))
