"""The web dashboard's HTTP side (scheduler/server/dashboard.py) against a real controller and
SQLite store, over real loopback HTTP with aiohttp's client: who may see what (the gRPC
tokens and rules), the JSON snapshot, the live event stream following changes, the page
and its assets shipped in the package with a strict Content-Security-Policy."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
from scheduler.server.dashboard import start_dashboard
from scheduler.server.interceptor import Authenticator
from scheduler.server.views import Views
from scheduler.store.sqlite import SqliteStore
from tests.builders import NOW, FakeClock, a_job, a_site_power
from tests.unit.agent_script import confirm, drain

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1000).with_gpus(8).build()
OPS, ACME, GLOBEX, SITE = "o" * 16, "a" * 16, "g" * 16, "s" * 16
WAIT_S = 30.0  # generous: a loaded CI machine; each wait ends as soon as its condition holds


def config() -> SchedulerConfig:
    return SchedulerConfig(
        regions=["us"],
        sites={"tx-1": SITE},
        tenants={"acme": ACME, "globex": GLOBEX},
        operators={"ops": OPS},
        schedule_interval_s=3600,
        power_interval_s=3600,
        site_timeout_s=7200,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def with_dashboard(tmp_path, test, **settings):
    """Runs `test(controller, session, http, base_url)` against a dashboard on 127.0.0.1:<any>
    over a controller with tx-1 attached, metered, and one job each of acme and globex."""
    cfg = config()
    controller = Controller(SqliteStore(tmp_path / "pp.db"), cfg, FakeClock())
    await controller.start(loops=False)
    dashboard = None
    try:
        session = await controller.attach("tx-1", "us", (GpuNode("n1", "H100", 8),), [], POWER)
        await controller.dispatch_power(sweep=True)
        await confirm(controller, drain(session))
        for tenant in ("acme", "globex"):
            await controller.submit(tenant, f"r-{tenant}", a_job().of(tenant).training(gpus=16).in_regions("us").build().spec)
        dashboard = await start_dashboard(Views(controller), controller.changes, Authenticator(cfg.token_owners()), "127.0.0.1", 0, **settings)
        assert dashboard.port > 0
        async with aiohttp.ClientSession() as http:
            await test(controller, session, http, f"http://127.0.0.1:{dashboard.port}")
    finally:
        if dashboard is not None:
            await dashboard.close()
        await controller.stop()


async def status_of(http, url: str, headers=None) -> int:
    async with http.get(url, headers=headers or {}) as response:
        return response.status


def test_tokens_decide_who_sees_what(tmp_path):
    async def test(controller, session, http, base):
        for path in ("/api/snapshot", "/api/stream"):
            assert await status_of(http, base + path) == 401  # no token
            assert await status_of(http, base + path, bearer("x" * 16)) == 401  # unknown
            assert await status_of(http, base + path, {"Authorization": OPS}) == 401  # not a bearer
            assert await status_of(http, base + path, bearer(SITE)) == 403  # an agent's
        async with http.get(base + "/healthz") as response:
            assert response.status == 200 and await response.text() == "ok"

        async with http.get(base + "/api/snapshot", headers=bearer(OPS)) as response:
            assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
            everything = await response.json()
        assert everything["viewer"] == {"role": "operator", "name": "ops"}
        assert [s["site"]["site_id"] for s in everything["sites"]] == ["tx-1"]
        power = everything["sites"][0]["site"]["power"]
        assert power["cap_w"] == 7e6 and power["mining_w"] > 0 and power["fleets"]
        assert {j["tenant"] for j in everything["jobs"]} == {"acme", "globex"}
        assert everything["jobs"][0]["pending_reason"]  # 16 GPUs fit nowhere: it says why

        async with http.get(base + "/api/snapshot", headers=bearer(ACME)) as response:
            own = await response.json()
        assert own["viewer"] == {"role": "tenant", "name": "acme"}
        assert [j["tenant"] for j in own["jobs"]] == ["acme"]
        assert not own["sites"] and not own["grid_events"]

    asyncio.run(with_dashboard(tmp_path, test))


class Events:
    """Reads a server-sent event stream: `await message()` is the next snapshot or None for a
    keepalive comment; `await snapshot()` the next snapshot. Each waits at most WAIT_S."""

    def __init__(self, response: aiohttp.ClientResponse):
        self.response = response
        self._buffer = b""

    async def message(self) -> dict | None:
        while b"\n\n" not in self._buffer:
            chunk = await asyncio.wait_for(self.response.content.readany(), WAIT_S)
            assert chunk, "the stream ended"
            self._buffer += chunk
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        if block == b": keepalive":
            return None
        assert block.startswith(b"data: "), block
        return json.loads(block[len(b"data: ") :])

    async def snapshot(self) -> dict:
        async def first():
            while (found := await self.message()) is None:
                pass
            return found

        return await asyncio.wait_for(first(), WAIT_S)


def test_the_stream_sends_a_snapshot_then_one_after_each_change(tmp_path):
    async def test(controller, session, http, base):
        async with http.get(base + "/api/stream", headers=bearer(OPS)) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert response.headers["Cache-Control"] == "no-store"
            events = Events(response)
            first = await events.snapshot()
            assert first["sites"][0]["site"]["power"]["cap_w"] == 7e6 and not first["grid_events"]

            cut = GridEvent("cut-1", GridEventKind.CAP_LIMIT, start=NOW, end=NOW + 600, site_id="tx-1", cap_w=5e6)
            await controller.post_grid_event(cut)
            after = await events.snapshot()
            while not after["grid_events"]:  # a snapshot taken before the post may still be in flight
                after = await events.snapshot()
            assert after["version"] > first["version"]
            assert after["sites"][0]["site"]["power"]["cap_w"] == 5e6
            (event,) = after["grid_events"]
            assert event["event"]["event_id"] == "cut-1" and event["state"] == "GRID_EVENT_STATE_ACTIVE"

            # No change for refresh_s: a comment, so the page knows the stream is alive.
            assert await events.message() is None

        async with http.get(base + "/api/stream", headers=bearer(GLOBEX)) as response:
            own = await Events(response).snapshot()
            assert [j["tenant"] for j in own["jobs"]] == ["globex"] and not own["sites"]

    asyncio.run(with_dashboard(tmp_path, test, min_interval_s=0.1, refresh_s=0.3))


def test_the_page_and_its_assets_come_from_the_package_under_a_strict_policy(tmp_path):
    async def test(controller, session, http, base):
        async with http.get(base + "/") as page:
            assert page.status == 200 and page.content_type == "text/html"
            html = await page.text()
            policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "/static/app.js" in html and "/static/style.css" in html
        assert "http://" not in html and "https://" not in html  # nothing from a CDN
        for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
            async with http.get(f"{base}/static/{asset}") as response:
                assert response.status == 200 and kind in response.content_type
                assert "Content-Security-Policy" in response.headers
                body = await response.text()
            assert "innerHTML" not in body and "https://" not in body
        assert await status_of(http, base + "/static/../dashboard.py") == 404

    asyncio.run(with_dashboard(tmp_path, test))


def test_close_ends_open_streams_at_once(tmp_path):
    async def main():
        cfg = config()
        controller = Controller(SqliteStore(tmp_path / "pp.db"), cfg, FakeClock())
        await controller.start(loops=False)
        dashboard = await start_dashboard(Views(controller), controller.changes, Authenticator(cfg.token_owners()), "127.0.0.1", 0, refresh_s=60)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{dashboard.port}/api/stream", headers=bearer(OPS)) as response:
                    await Events(response).snapshot()
                    await asyncio.wait_for(dashboard.close(), 1.0)  # open streams are ended, not waited for
        finally:
            await controller.stop()

    asyncio.run(main())


@pytest.mark.parametrize("path", ["/api/snapshot", "/api/stream"])
def test_a_token_in_the_query_string_is_not_taken(tmp_path, path):
    async def test(controller, session, http, base):
        assert await status_of(http, f"{base}{path}?token={OPS}") == 401  # tokens travel in a header only

    asyncio.run(with_dashboard(tmp_path, test))
