"""Price feeds: the leader pulls power prices from each configured feed (config.price_feeds)
and posts them as PRICE grid events, as an operator's `PostGridEvent` would.

One asyncio task per feed, started and stopped with the leader's other loops (app.py
`_lead` and `stop`): every `interval_s` it GETs the feed's URL (aiohttp; with the
feed's subscription key and login token when it has `auth`, scheduler/server/price_feed_auth.py;
an ERCOT answer of several pages is read page by page, up to `max_pages`), retrying a
connection error, a timeout, a 5xx or a 429 with exponential backoff (tenacity, at most
`attempts` tries per poll), parses the body (core/price_parsing.py) and posts the events the
scheduler does not have yet through `controller.post_grid_event` (ids are stable, so a
repost is a no-op and a restarted leader starts where the store is). A failed poll counts
an error for the feed (`errors`, the metric `powerplane_price_feed_errors_total`) and is
logged; the next poll comes at the next interval.

Staleness is decided in the core (core/price_watch.py: mining holds at its floor when a
watched node's newest price is older than `stale_after_s`, unless `on_stale: keep_last`);
this loop only logs a WARNING when a node goes stale and an INFO line when prices are back,
reading the same state the decision reads. `newest` records the newest interval start each
feed brought per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Iterable

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from scheduler.core.errors import PowerplaneError
from scheduler.core.price_parsing import PriceBodyError, ercot_total_pages, parse_prices
from scheduler.core.price_watch import price_age_s
from scheduler.server.config import PriceFeedConfig
from scheduler.server.controller import Controller
from scheduler.server.price_feed_auth import FeedCredentials, FeedRefused, FeedUnavailable

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})




class PriceFeeds:
    def __init__(self, feeds: Iterable[PriceFeedConfig], controller: Controller, backoff_s: float = 1.0, max_backoff_s: float = 30.0):
        self.feeds = {feed.name: feed for feed in feeds}
        self.controller = controller
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.errors: dict[str, int] = dict.fromkeys(self.feeds, 0)  # failed polls per feed
        self.newest: dict[tuple[str, str], float] = {}  # (feed, market node) -> newest interval start brought
        self.stale: set[tuple[str, str]] = set()  # (feed, market node) logged stale and not back yet
        self.refused: set[str] = set()  # event ids the scheduler refused (content changed under the same id)
        self.credentials: dict[str, FeedCredentials] = {}  # feed name -> its login, for feeds with auth
        self._tasks: dict[str, asyncio.Task] = {}  # feed name -> its loop
        self._retired: set[asyncio.Task] = set()  # loops of feeds a reload changed or removed, until they end
        self._session: aiohttp.ClientSession | None = None
        self._running = False

    def start(self) -> None:
        self._running = True
        if not self.feeds:
            return
        self._start_loops()
        log.info("price feeds: %s", ", ".join(f"{f.name} ({f.kind}, {f.format}, every {f.interval_s:g}s)" for f in self.feeds.values()))

    def _start_loops(self) -> None:
        if self._session is None and self.feeds:
            self._session = aiohttp.ClientSession()
        for name, feed in self.feeds.items():
            if name not in self._tasks:
                self._tasks[name] = asyncio.create_task(self._run(feed), name=f"price-feed-{name}")

    def reconfigure(self, feeds: Iterable[PriceFeedConfig]) -> None:
        """The feeds of a reloaded config (reload.py): a changed or removed feed's loop is
        cancelled, a new or changed one's started (if the feeds run: the leader's); unchanged
        feeds go on polling."""
        new = {feed.name: feed for feed in feeds}
        for name, feed in self.feeds.items():
            if new.get(name) != feed and name in self._tasks:
                task = self._tasks.pop(name)
                task.cancel()
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)
        self.errors = {name: self.errors.get(name, 0) for name in new}
        self.feeds = new
        if self._running:
            self._start_loops()
        log.info("price feeds reconfigured: %s", ", ".join(new) or "none")

    async def stop(self) -> None:
        self._running = False
        tasks = [*self._tasks.values(), *self._retired]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = {}
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, feed: PriceFeedConfig) -> None:
        while True:
            try:
                await self.poll(feed)
            except Exception as err:  # the loop outlives any one poll
                self.errors[feed.name] += 1
                log.warning("price feed %s: poll failed: %s", feed.name, _one_line(err), extra={"price_feed": feed.name})
            self.check_staleness(feed)
            await asyncio.sleep(feed.interval_s)

    async def poll(self, feed: PriceFeedConfig) -> int:
        """Fetch (with retries; every page of an ERCOT answer, up to max_pages), parse and
        post one feed's prices; returns how many were new."""
        body = await self._fetch_with_retries(feed, feed.url)
        bodies = [body]
        if feed.format == "ercot_json":
            pages = ercot_total_pages(body)
            if pages > feed.max_pages:
                log.warning("price feed %s: %d pages, reading the first %d (max_pages)", feed.name, pages, feed.max_pages, extra={"price_feed": feed.name})
            for page in range(2, min(pages, feed.max_pages) + 1):
                bodies.append(await self._fetch_with_retries(feed, with_page(feed.url, page)))
        events = [e for b in bodies for e in parse_prices(b, feed.format, feed.market_nodes, forecast=feed.kind == "day_ahead", reason=f"price feed {feed.name}")]
        posted = 0
        for event in events:
            key = (feed.name, event.market_node)
            self.newest[key] = max(self.newest.get(key, event.start), event.start)
            if event.event_id in self.controller.power.grid or event.event_id in self.refused:
                continue
            try:
                await self.controller.post_grid_event(event)
                posted += 1
            except PowerplaneError as err:  # e.g. a price corrected under the same interval: the first one stays
                self.refused.add(event.event_id)
                log.warning("price feed %s: event %s refused: %s", feed.name, event.event_id, err, extra={"price_feed": feed.name})
        return posted

    async def _fetch_with_retries(self, feed: PriceFeedConfig, url: str) -> bytes:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(feed.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception_type(FeedUnavailable),
            before_sleep=lambda state: log.info(
                "price feed %s: try %d failed (%s), retrying", feed.name, state.attempt_number, _one_line(state.outcome.exception())
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._fetch(feed, url)
        raise AssertionError("unreachable: tenacity reraises the last failure")

    async def _fetch(self, feed: PriceFeedConfig, url: str) -> bytes:
        assert self._session is not None, "start() first"
        credentials = None
        if feed.auth is not None:
            credentials = self.credentials.get(feed.name)
            if credentials is None or credentials.auth != feed.auth:
                credentials = self.credentials[feed.name] = FeedCredentials(feed.auth)
        try:
            headers = await credentials.headers(self._session, feed.timeout_s) if credentials is not None else {}
            async with self._session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=feed.timeout_s)) as response:
                if response.status == 401 and credentials is not None and credentials.auth.token_url is not None:
                    credentials.invalidate()  # expired or revoked early: the next try logs in again
                    raise FeedUnavailable("HTTP 401: logging in again")
                if response.status in RETRY_STATUSES:
                    raise FeedUnavailable(f"HTTP {response.status}")
                if response.status != 200:
                    raise FeedRefused(f"HTTP {response.status}")
                body = await response.content.read(MAX_BODY_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise FeedUnavailable(_one_line(err) or type(err).__name__) from err
        if len(body) > MAX_BODY_BYTES:
            raise FeedRefused(f"body larger than {MAX_BODY_BYTES} bytes")
        return body

    def check_staleness(self, feed: PriceFeedConfig) -> None:
        """Log each node of the feed going stale (WARNING) and coming back (INFO), as the core sees it."""
        now = self.controller.clock()
        events = self.controller.power.events(now)
        for watch in feed.watches():
            key, age = (feed.name, watch.market_node), price_age_s(events, watch, now)
            if age > watch.stale_after_s and key not in self.stale:
                self.stale.add(key)
                fallback = "dispatching on the last price (on_stale: keep_last)" if watch.keep_last else "mining at its sites held at its floor"
                log.warning(
                    "price feed %s: no fresh %s price for %s (newest: %s; stale after %gs): %s",
                    feed.name,
                    feed.kind,
                    watch.market_node,
                    "none" if age == float("inf") else f"{age:.0f}s old",
                    watch.stale_after_s,
                    fallback,
                    extra={"price_feed": feed.name, "market_node": watch.market_node},
                )
            elif age <= watch.stale_after_s and key in self.stale:
                self.stale.discard(key)
                log.info("price feed %s: prices for %s are fresh again", feed.name, watch.market_node, extra={"price_feed": feed.name})


def with_page(url: str, page: int) -> str:
    """`url` asking for page `page` (its `page` query parameter set, the others kept)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "page"] + [("page", str(page))]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _one_line(err: BaseException | None) -> str:
    return " ".join(str(err).split()) if err is not None else ""


__all__ = ["FeedRefused", "FeedUnavailable", "PriceBodyError", "PriceFeeds"]
