"""The price feed shell (scheduler/server/price_feeds.py) against a real HTTP server on
127.0.0.1 replaying responses of the ERCOT public reports API's shape (np6-905-cd
real-time settlement point prices), built from the real HB_SOUTH prices in
/work/shared/data/ercot_hb_south_15min_2024-06_2025-03.csv (ERCOT HB_SOUTH hub prices via
the GitHub repository ThibaudCambronne/MPC-BESS-ERCOT, MIT, Copyright (c) 2025 Thibaud
Cambronne; see /work/shared/data/SOURCES.md). The sample in scheduler/sim/sample_data
stands in where the shared folder is absent.

One scenario with a real controller and store: prices arrive as PRICE events and mining
runs on them; a server error is retried within the poll and the poll recovers; then the
feed goes silent (503 on every try): its errors count, and once its newest price is older
than stale_after_s the WARNING is logged, the age metric shows it and mining falls back to
its floor. Waits are on conditions, never fixed sleeps."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.server.metrics import SchedulerMetrics
from scheduler.server.price_feeds import PriceFeeds
from scheduler.store.sqlite import SqliteStore
from tests.builders import FakeClock, a_site_power
from tests.unit.agent_script import confirm, drain

SHARED = Path("/work/shared/data/ercot_hb_south_15min_2024-06_2025-03.csv")
FIELDS = ["deliveryDate", "deliveryHour", "deliveryInterval", "settlementPoint", "settlementPointType", "settlementPointPrice", "DSTFlag"]
CENTRAL = dt.timezone(dt.timedelta(hours=-5))  # CDT: the rows used are in June
STALE_AFTER_S = 1800.0


def hb_south_rows(count: int) -> list[tuple[dt.datetime, float]]:
    """The first `count` real-time intervals of the trace (local ERCOT time, USD/MWh)."""
    path = SHARED if SHARED.exists() else next(Path(__file__).resolve().parents[2].glob("scheduler/sim/sample_data/ercot*.csv"))
    with path.open() as handle:
        rows = [(dt.datetime.fromisoformat(r["interval_start"]), float(r["rtm_usd_per_mwh"])) for _, r in zip(range(count), csv.DictReader(handle))]
    assert len(rows) == count
    return rows


def ercot_page(rows: list[tuple[dt.datetime, float]]) -> str:
    """An np6-905-cd response as the API gives it: the operating day's intervals so far."""
    data = [[t.date().isoformat(), t.hour + 1, t.minute // 15 + 1, "HB_SOUTH", "HU", price, False] for t, price in rows]
    meta = {"totalRecords": len(data), "pageSize": 100000, "totalPages": 1, "currentPage": 1}
    return json.dumps({"_meta": meta, "report": {"reportEMILId": "NP6-905-CD"}, "fields": [{"name": n, "dataType": "VARCHAR"} for n in FIELDS], "data": data})


class ReplayServer:
    """Serves scripted (status, body) answers in order, then `after` on every request."""

    def __init__(self, script: list[tuple[int, str]], after: tuple[int, str]):
        self.script, self.after, self.requests = list(script), after, 0

    async def handle(self, request: web.Request) -> web.Response:
        assert request.query.get("settlementPoint") == "HB_SOUTH"
        self.requests += 1
        status, body = self.script.pop(0) if self.script else self.after
        return web.Response(status=status, text=body, content_type="application/json")


async def until(condition, what: str, timeout_s: float = 10.0) -> None:
    async def wait():
        while not condition():
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(wait(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def test_prices_arrive_a_server_error_is_retried_and_a_silent_feed_raises_the_alarm_and_curtails_mining(tmp_path, caplog):
    rows = hb_south_rows(8)
    first, second = ercot_page(rows[:4]), ercot_page(rows)
    starts = [t.replace(tzinfo=CENTRAL).timestamp() for t, _ in rows]
    server = ReplayServer([(500, "busy"), (200, first), (200, second)], after=(503, "down for maintenance"))
    clock = FakeClock(starts[-1] + 300)  # five minutes after the last interval began

    async def scenario():
        app = web.Application()
        app.router.add_get("/api/public-reports/np6-905-cd/spp_node_zone_hub", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        feed = {
            "name": "ercot-rt",
            "url": f"http://127.0.0.1:{port}/api/public-reports/np6-905-cd/spp_node_zone_hub?settlementPoint=HB_SOUTH",
            "format": "ercot_json",
            "kind": "real_time",
            "market_nodes": ["HB_SOUTH"],
            "interval_s": 0.02,
            "stale_after_s": STALE_AFTER_S,
            "attempts": 2,
        }
        config = SchedulerConfig(regions=["us"], sites={"tx-1": "s" * 16}, schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, price_feeds=[feed])
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config, clock)
        await controller.start(loops=False)
        feeds = PriceFeeds(config.price_feeds, controller, backoff_s=0.001, max_backoff_s=0.005)
        try:
            power = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1000, "s21").at_node("HB_SOUTH").build()
            fleet = power.fleets[0]
            session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], power)
            await controller.dispatch_power(sweep=True)
            await confirm(controller, drain(session))
            feeds.start()

            # Prices arrive (the 500 before them was retried within the same poll), the newest in force.
            await until(lambda: f"rt-HB_SOUTH-{int(starts[-1])}" in controller.power.grid, "the second page's newest price")
            assert all(f"rt-HB_SOUTH-{int(t)}" in controller.power.grid for t in starts)
            assert server.requests >= 3 and feeds.errors["ercot-rt"] == 0  # the 500 cost a retry, not a failed poll
            assert feeds.newest[("ercot-rt", "HB_SOUTH")] == starts[-1]
            await controller.dispatch_power(sweep=True)
            assert controller.power.figures("tx-1", controller.jobs, clock()).price_usd_per_mwh == rows[-1][1]
            assert controller.power.sites["tx-1"].targets["s21"] == pytest.approx(fleet.max_w)  # cheap power: mining runs

            # The feed goes silent: every try answers 503, the polls fail and are counted.
            await until(lambda: feeds.errors["ercot-rt"] >= 2, "failed polls counted")
            assert ("ercot-rt", "HB_SOUTH") not in feeds.stale  # not stale yet: the last price is 5 minutes old
            clock.advance(STALE_AFTER_S)  # now 35 minutes
            await until(lambda: ("ercot-rt", "HB_SOUTH") in feeds.stale, "the stale-price alarm")
            assert any(r.levelno == logging.WARNING and "no fresh real_time price for HB_SOUTH" in r.getMessage() for r in caplog.records)
            await controller.dispatch_power(sweep=True)
            assert controller.power.sites["tx-1"].targets["s21"] == pytest.approx(fleet.standby_w)  # mining falls back to its floor

            scrape = generate_latest(SchedulerMetrics(controller, price_feeds=feeds).registry).decode()
            age = next(line for line in scrape.splitlines() if line.startswith("powerplane_price_feed_age_seconds{"))
            assert float(age.rsplit(" ", 1)[1]) == pytest.approx(STALE_AFTER_S + 300)
            assert 'powerplane_price_feed_errors_total{feed="ercot-rt"}' in scrape
            assert 'powerplane_site_price_stale{site="tx-1"} 1.0' in scrape
        finally:
            await feeds.stop()
            await controller.stop()
            await runner.cleanup()

    with caplog.at_level(logging.INFO, logger="scheduler.server.price_feeds"):
        asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_price_feed_config_is_checked_and_named_in_one_line(tmp_path):
    from scheduler.server.config import load_config

    path = tmp_path / "scheduler.yaml"
    feed = "{name: rt, url: 'ftp://x', format: xml, kind: real_time, market_nodes: [], on_stale: ignore}"
    path.write_text(f"price_feeds: [{feed}, {{name: rt, url: 'http://x', format: csv, kind: day_ahead, market_nodes: [N]}}]\n")
    with pytest.raises(ValueError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "\n" not in text
    for says in ("price_feeds.0.url: url must be an http:// or https:// URL", "price_feeds.0.format:", "price_feeds.0.market_nodes:", "price_feeds.0.on_stale:"):
        assert says in text, text
    path.write_text("price_feeds: [{name: rt, url: 'http://x', format: csv, kind: day_ahead, market_nodes: [N]}, {name: rt, url: 'http://y', format: csv, kind: real_time, market_nodes: [N]}]\n")
    with pytest.raises(ValueError, match="price feed names must be unique: rt given twice"):
        load_config(path)
    path.write_text("price_feeds: [{name: da, url: 'https://x/p.csv', format: csv, kind: day_ahead, market_nodes: [HB_SOUTH], on_stale: keep_last}]\n")
    (watch,) = load_config(path).price_feeds[0].watches()
    assert (watch.feed, watch.market_node, watch.forecast, watch.keep_last, watch.stale_after_s) == ("da", "HB_SOUTH", True, True, 3600.0)


class ErcotApi:
    """ERCOT's public API as its documentation describes it: a B2C login (POST, query
    parameters) that answers an id_token, and a report that wants the subscription key
    and that token, answering in pages (`page=N`, `_meta.totalPages`)."""

    def __init__(self, pages: list[str]):
        self.pages, self.logins, self.tokens, self.keys_seen = pages, 0, set(), set()
        self.requests = self.requests_at_login = 0

    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        if (q.get("username"), q.get("password"), q.get("grant_type"), q.get("client_id")) != ("ops@example.com", "hunter2-pw", "password", "cid"):
            return web.Response(status=400, text='{"error": "invalid_grant"}')
        self.logins += 1
        self.requests_at_login = self.requests
        token = f"tok-{self.logins}"
        self.tokens = {token}  # only the newest is valid
        return web.json_response({"id_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def report(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.keys_seen.add(request.headers.get("Ocp-Apim-Subscription-Key"))
        if request.headers.get("Ocp-Apim-Subscription-Key") != "key-123" or request.headers.get("Authorization", "")[7:] not in self.tokens:
            return web.Response(status=401, text='{"statusCode": 401}')
        page = int(request.query.get("page", "1"))
        return web.Response(text=self.pages[page - 1], content_type="application/json")


def test_an_ercot_feed_logs_in_sends_its_key_reads_every_page_and_logs_in_again_after_a_401(tmp_path, caplog):
    rows = hb_south_rows(8)
    starts = [t.replace(tzinfo=CENTRAL).timestamp() for t, _ in rows]
    pages = []
    for k in range(2):
        doc = json.loads(ercot_page(rows[4 * k : 4 * k + 4]))
        doc["_meta"].update(totalPages=2, currentPage=k + 1, totalRecords=8, pageSize=4)
        pages.append(json.dumps(doc))
    api = ErcotApi(pages)
    (tmp_path / "key.txt").write_text("key-123\n")
    (tmp_path / "password.txt").write_text("hunter2-pw\n")

    async def scenario():
        from scheduler.server.config import load_config

        app = web.Application()
        app.router.add_post("/token", api.token)
        app.router.add_get("/api/public-reports/np6-905-cd/spp_node_zone_hub", api.report)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        auth = f"{{subscription_key_file: key.txt, token_url: '{base}/token', username: ops@example.com, password_file: password.txt, client_id: cid}}"
        url = f"{base}/api/public-reports/np6-905-cd/spp_node_zone_hub?settlementPoint=HB_SOUTH"
        (tmp_path / "scheduler.yaml").write_text(
            f"regions: [us]\nprice_feeds: [{{name: ercot-rt, url: '{url}', format: ercot_json, kind: real_time, market_nodes: [HB_SOUTH], interval_s: 0.02, attempts: 2, auth: {auth}}}]\n"
        )
        config = load_config(tmp_path / "scheduler.yaml")
        controller = Controller(SqliteStore(tmp_path / "pp.db"), config, FakeClock(starts[-1] + 300))
        await controller.start(loops=False)
        feeds = PriceFeeds(config.price_feeds, controller, backoff_s=0.001, max_backoff_s=0.005)
        feeds.start()
        try:
            await until(lambda: all(f"rt-HB_SOUTH-{int(t)}" in controller.power.grid for t in starts), "both pages' prices")
            assert api.logins == 1 and api.keys_seen == {"key-123"}
            requests = api.requests
            await until(lambda: api.requests >= requests + 6, "three more polls")
            assert api.logins == 1  # the token is kept between polls
            api.tokens = set()  # revoked before it expired: a 401, and the next try logs in again
            await until(lambda: api.logins == 2, "a new login")
            await until(lambda: api.requests >= api.requests_at_login + 4, "polls with the new token")
            assert feeds.errors["ercot-rt"] == 0  # the 401 cost a try, not a poll
            (tmp_path / "password.txt").write_text("wrong-pw\n")  # rotated badly: read at the next login
            api.tokens = set()
            await until(lambda: feeds.errors["ercot-rt"] >= 1, "a failed poll")
            said = [r.getMessage() for r in caplog.records if "ercot-rt" in r.getMessage()]
            assert any("login refused: HTTP 400" in line for line in said)
            assert not any("wrong-pw" in line or "hunter2" in line or "key-123" in line for line in said)  # secrets never logged
        finally:
            await feeds.stop()
            await controller.stop()
            await runner.cleanup()

    with caplog.at_level(logging.INFO, logger="scheduler.server.price_feeds"):
        asyncio.run(asyncio.wait_for(scenario(), 30))


def test_price_feed_auth_files_must_exist_and_hold_something(tmp_path):
    from scheduler.server.config import load_config

    (tmp_path / "empty.txt").write_text("\n")
    path = tmp_path / "scheduler.yaml"
    feed = "{name: rt, url: 'http://x', format: ercot_json, kind: real_time, market_nodes: [N], auth: %s}"
    path.write_text("price_feeds: [" + feed % "{subscription_key_file: empty.txt}" + "]\n")
    with pytest.raises(ValueError, match="price_feeds.rt.auth.subscription_key_file: .*empty.txt is empty"):
        load_config(path)
    path.write_text("price_feeds: [" + feed % "{token_url: 'http://t', username: u}" + "]\n")
    with pytest.raises(ValueError, match="auth.token_url needs username and password_file"):
        load_config(path)
