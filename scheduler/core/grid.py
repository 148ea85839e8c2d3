"""Grid events: what the grid asks of a site, and what is in force at a moment.

Kinds: a cap limit (the site's cap is `cap_w` from `start` to `end`, load under it
by `respond_by`), a power price for a market node (real time, or a day-ahead
forecast), an emergency (shed all flexible load at the site until `end`), and
the global hashprice. Events are idempotent by the sender's `event_id`: the same
id with the same content is the same event; the same id with other content is
refused unless it carries a higher `modification` number (OpenADR's
modificationNumber): then it replaces the content (`modify`). An event may be ended
early (`end_early`: OpenADR's cancellation, or an operator); its record keeps when,
why and the end it had. Pure: every function takes `now`.

A cap limit is *planned for* from `deadline - lead_s` (its respond-by, else its start,
less the site's slowest ramp-down plus the order's way to the agent) so that mining is
down when the cap must be met, and not earlier than that needs. An event carries when
the grid told of it (`notified_at`, its notice); its record keeps how it was met: time
over the cap and the largest excess, and the site's physical floor when it was posted.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scheduler.core.errors import FailedPrecondition, InvalidArgument, shown
from scheduler.core.power import watts_text
from scheduler.core.validation import MAX_ID as MAX_EVENT_ID

FOREVER = math.inf


class GridEventKind(enum.IntEnum):
    CAP_LIMIT = 1
    PRICE = 2
    EMERGENCY = 3
    HASHPRICE = 4


class GridEventState(enum.IntEnum):
    UPCOMING = 1
    ACTIVE = 2
    ENDED = 3


@dataclass(frozen=True)
class GridEvent:
    event_id: str
    kind: GridEventKind
    start: float
    end: float = FOREVER
    site_id: str = ""
    cap_w: float = 0.0
    respond_by: float = 0.0  # 0: at start
    market_node: str = ""
    usd_per_mwh: float = 0.0
    forecast: bool = False
    hashprice_usd_per_ph_day: float = 0.0
    reason: str = ""
    modification: int = 0  # a higher number replaces the content posted under the same id
    notified_at: float = 0.0  # when the grid told of it (its notice); 0: when the scheduler received it

    @property
    def deadline(self) -> float:
        return max(self.start, self.respond_by) if self.respond_by else self.start

    def state(self, now: float) -> GridEventState:
        if now >= self.end:  # an event ended before it started is ended, not upcoming
            return GridEventState.ENDED
        return GridEventState.UPCOMING if now < self.start else GridEventState.ACTIVE

    def describe(self) -> str:
        match self.kind:
            case GridEventKind.CAP_LIMIT:
                text = f"cap limit {watts_text(self.cap_w)} at {self.site_id}"
            case GridEventKind.EMERGENCY:
                text = f"grid emergency at {self.site_id}"
            case GridEventKind.PRICE:
                text = f"{'forecast' if self.forecast else 'price'} {self.usd_per_mwh:.2f} USD/MWh at {self.market_node}"
            case _:
                text = f"hashprice {self.hashprice_usd_per_ph_day:.2f} USD/PH/day"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass(frozen=True)
class GridEventRecord:
    """A received event and how it was met (the response steps, in order)."""

    event: GridEvent
    received_at: float
    response: tuple[str, ...] = field(default_factory=tuple)
    readings_in_force: int = 0  # site readings taken while the event was to be met
    breaches: int = 0  # of those, readings that did not meet it
    responded_at: float | None = None  # cap limits, emergencies: the first orders sent for it
    met_at: float | None = None  # the first reading, once received, that met it
    modified_at: float | None = None  # the last modification received
    ended_at: float | None = None  # when the end-early was received
    scheduled_end: float | None = None  # ended early: the end it had before
    end_reason: str = ""  # ended early: by whom and why
    last_read_at: float | None = None  # the last site reading counted against it while in force
    over_cap_s: float = 0.0  # cap limits: time the meter was read over the cap while in force (reading to reading)
    max_excess_w: float = 0.0  # cap limits: the most the meter was read over the cap
    floor_w: float = 0.0  # cap limits: the least the site can draw at all (idle GPUs, paused miners), when posted

    @property
    def met(self) -> bool:
        """Met: the site was read while the event was in force, and never found short of it."""
        return self.readings_in_force > 0 and self.breaches == 0

    @property
    def notice_s(self) -> float:
        """How long before its start the grid told us (0 or less: no notice, or a late post)."""
        told = self.event.notified_at or self.received_at
        return self.event.start - told

    @property
    def below_floor(self) -> bool:
        """A cap the site cannot reach even with everything shed: it is flagged when posted."""
        return self.event.kind == GridEventKind.CAP_LIMIT and self.event.cap_w < self.floor_w


MAX_RESPONSE_LINES = 500


def with_lines(record: GridEventRecord, lines: Iterable[str]) -> GridEventRecord:
    """The record with response lines added (the newest MAX_RESPONSE_LINES kept)."""
    return dataclasses.replace(record, response=(*record.response, *lines)[-MAX_RESPONSE_LINES:])


def validate_event(event: GridEvent, known_sites: Iterable[str]) -> None:
    """Refuse an event a sender got wrong, naming every problem."""
    problems = []
    if not event.event_id or len(event.event_id) > MAX_EVENT_ID:
        problems.append(f"event_id must be 1..{MAX_EVENT_ID} characters")
    if event.end <= event.start:
        problems.append("end must be after start")
    if not (math.isfinite(event.notified_at) and event.notified_at >= 0):
        problems.append(f"notified_at must be a time (or 0: on receipt), got {event.notified_at}")
    if event.kind in (GridEventKind.CAP_LIMIT, GridEventKind.EMERGENCY):
        if event.site_id not in set(known_sites):
            problems.append(f"site {shown(event.site_id)} is not a site this scheduler knows")
    if event.kind == GridEventKind.CAP_LIMIT:
        if not event.cap_w >= 0 or math.isinf(event.cap_w):
            problems.append(f"cap_w must be a finite number >= 0, got {event.cap_w}")
        if event.respond_by and event.respond_by < event.start:
            problems.append("respond_by must not be before start")
    if event.kind == GridEventKind.PRICE:
        if not event.market_node:
            problems.append("a price needs its market_node")
        if not math.isfinite(event.usd_per_mwh):
            problems.append("usd_per_mwh must be finite")
    if event.kind == GridEventKind.HASHPRICE and not (math.isfinite(event.hashprice_usd_per_ph_day) and event.hashprice_usd_per_ph_day >= 0):
        problems.append("hashprice_usd_per_ph_day must be a finite number >= 0")
    if problems:
        raise InvalidArgument("; ".join(problems))


def modify(record: GridEventRecord, event: GridEvent, known_sites: Iterable[str], now: float) -> GridEventRecord | None:
    """The record after `event` is posted again under its id: None when it is the event
    already held (same modification, same content; a start left to default is ignored),
    the record with the new content for a higher modification number. Refuses a lower
    number, other content under the same number, a change of kind or site, or a change
    to an event that has ended."""
    held = record.event
    name = shown(event.event_id)
    if event.modification < held.modification:
        raise FailedPrecondition(f"grid event {name} is at modification {held.modification}; modification {event.modification} is older")
    original = dataclasses.replace(held, end=record.scheduled_end) if record.scheduled_end is not None else held
    if event.modification == held.modification:
        if event in (held, original) or dataclasses.replace(event, start=held.start) in (held, original):
            return None
        raise FailedPrecondition(f"grid event {name} was already posted with different content (post it with a modification above {held.modification} to change it)")
    if record.ended_at is not None or now >= held.end:
        raise FailedPrecondition(f"grid event {name} has ended: a modification cannot reopen it")
    if (event.kind, event.site_id) != (held.kind, held.site_id):
        raise FailedPrecondition(f"grid event {name}: a modification may not change its kind or site")
    validate_event(event, known_sites)
    return dataclasses.replace(record, event=event, modified_at=now)


def end_early(record: GridEventRecord, end: float | None, reason: str, now: float) -> GridEventRecord:
    """The record of an event ended at `end` (None, past, or before the event starts: now; an
    event ended before it starts never takes effect). Refuses an event that has already
    ended, or an end that is not before the one it has."""
    held = record.event
    name = shown(held.event_id)
    if record.ended_at is not None:
        raise FailedPrecondition(f"grid event {name} was already ended early ({record.end_reason})")
    if now >= held.end:
        raise FailedPrecondition(f"grid event {name} has already ended")
    at = now if end is None or end < held.start else max(end, now)
    if at >= held.end:
        raise FailedPrecondition(f"grid event {name} already ends at {at_text(held.end)}: ending it at {at_text(at)} would not end it early")
    return dataclasses.replace(record, event=dataclasses.replace(held, end=at), ended_at=now, scheduled_end=held.end, end_reason=reason)


def at_text(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock_text(at: float) -> str:
    """A response line's time stamp."""
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


def planning_cap(interconnect_cap_w: float, events: Iterable[GridEvent], site_id: str, now: float, lead_s: float) -> tuple[float, GridEvent | None]:
    """The cap dispatch plans under now, and the event that sets it (None: the interconnect)."""
    cap, source = interconnect_cap_w, None
    for event in events:
        if event.kind != GridEventKind.CAP_LIMIT or event.site_id != site_id:
            continue
        if event.deadline - lead_s <= now < event.end and event.cap_w < cap:  # a respond-by gives slack: used
            cap, source = event.cap_w, event
    return cap, source


def enforced_cap(interconnect_cap_w: float, events: Iterable[GridEvent], site_id: str, now: float) -> float:
    """The cap the site's metered power is held to now (past each event's deadline)."""
    cap = interconnect_cap_w
    for event in events:
        if event.kind == GridEventKind.CAP_LIMIT and event.site_id == site_id and event.deadline <= now < event.end:
            cap = min(cap, event.cap_w)
    return cap


def emergency(events: Iterable[GridEvent], site_id: str, now: float) -> GridEvent | None:
    for event in events:
        if event.kind == GridEventKind.EMERGENCY and event.site_id == site_id and event.start <= now < event.end:
            return event
    return None


def newest_prices(events: Iterable[GridEvent], market_node: str, now: float) -> tuple[GridEvent | None, GridEvent | None]:
    """(day-ahead forecast covering now, latest real-time price already started) for a node, as events."""
    forecast: GridEvent | None = None
    real_time: GridEvent | None = None
    for event in events:
        if event.kind != GridEventKind.PRICE or event.market_node != market_node or not event.start <= now < event.end:
            continue
        if event.forecast and (forecast is None or event.start >= forecast.start):
            forecast = event
        elif not event.forecast and (real_time is None or event.start >= real_time.start):
            real_time = event
    return forecast, real_time


def price_now(events: Iterable[GridEvent], market_node: str, now: float) -> tuple[float | None, float | None]:
    """(day-ahead forecast covering now, latest real-time price already started) for a node."""
    forecast, real_time = newest_prices(events, market_node, now)
    return (forecast.usd_per_mwh if forecast else None), (real_time.usd_per_mwh if real_time else None)


def hashprice_now(events: Iterable[GridEvent], default: float, now: float) -> float:
    latest, latest_start = default, -FOREVER
    for event in events:
        if event.kind == GridEventKind.HASHPRICE and event.start <= now < event.end and event.start >= latest_start:
            latest, latest_start = event.hashprice_usd_per_ph_day, event.start
    return latest


def prices_over_before(events: Iterable[GridEvent], before: float) -> list[str]:
    """Price and hashprice events that stopped applying before `before`: ended, or superseded
    by a newer one of the same node and kind (a feed posts open-ended prices, each one in
    force until the next one starts). Retention drops them."""
    series: dict[tuple, list[GridEvent]] = {}
    for event in events:
        if event.kind == GridEventKind.PRICE:
            series.setdefault((event.kind, event.market_node, event.forecast), []).append(event)
        elif event.kind == GridEventKind.HASHPRICE:
            series.setdefault((event.kind,), []).append(event)
    over = []
    for members in series.values():
        members.sort(key=lambda e: (e.start, e.event_id))
        for event, successor in zip(members, [*members[1:], None]):
            if min(event.end, successor.start if successor else FOREVER) < before:
                over.append(event.event_id)
    return sorted(over)
