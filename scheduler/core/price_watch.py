"""Which prices a site may dispatch on: a price a feed stopped bringing is stale, and mining
does not run on a price nobody knows.

A `PriceWatch` says that a feed brings a market node's real-time or day-ahead prices and
how old its newest price may get (`stale_after_s`, counted from the start of the newest
interval already started; allow for the interval's length and the publication delay).
`node_price` reads the prices in force for a node (grid.newest_prices) and drops each
watched one that is stale, unless its watch says `keep_last`. When that leaves a watched
node with no price at all, its price is *unknown*: dispatch then holds every fleet at its
paused floor (the safe side: curtailing costs some revenue, mining through a price spike
nobody saw can cost far more). A price that no feed watches (posted by hand) is used as
before, however old. Pure: the events and `now` are inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scheduler.core.grid import GridEvent, newest_prices


@dataclass(frozen=True)
class PriceWatch:
    feed: str
    market_node: str
    forecast: bool  # day-ahead prices (else real-time)
    stale_after_s: float
    keep_last: bool = False  # on_stale: keep dispatching on the last price instead of curtailing


@dataclass(frozen=True)
class NodePrice:
    forecast: float | None  # day-ahead forecast in force, if fresh (or kept)
    real_time: float | None  # latest real-time price, if fresh (or kept)
    unknown: bool = False  # watched, and no fresh (or kept) price left: mining curtails
    stale: tuple[str, ...] = ()  # the feeds whose newest price for the node is stale


def price_age_s(events: Iterable[GridEvent], watch: PriceWatch, now: float) -> float:
    """Seconds since the start of the newest interval of the watched kind already started
    (infinite when there is none)."""
    event = newest_prices(events, watch.market_node, now)[0 if watch.forecast else 1]
    return now - event.start if event is not None else float("inf")


def node_price(events: Iterable[GridEvent], watches: Iterable[PriceWatch], market_node: str, now: float) -> NodePrice:
    events = list(events)
    forecast, real_time = newest_prices(events, market_node, now)
    prices = {True: forecast.usd_per_mwh if forecast else None, False: real_time.usd_per_mwh if real_time else None}
    mine = [w for w in watches if w.market_node == market_node]
    stale: list[str] = []
    for watch in mine:
        event = forecast if watch.forecast else real_time
        if event is None or now - event.start > watch.stale_after_s:
            stale.append(watch.feed)
            if not watch.keep_last:
                prices[watch.forecast] = None
    unknown = bool(mine) and prices[True] is None and prices[False] is None
    return NodePrice(prices[True], prices[False], unknown, tuple(stale))
