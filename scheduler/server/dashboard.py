"""The live web dashboard (issue 11), served by the scheduler over HTTP in its own asyncio
loop (aiohttp): the page and its static assets (dashboard_static/: plain HTML, CSS and
JavaScript shipped in the package, nothing from a CDN), the power snapshot of
`views.Views` as JSON once (`GET /api/snapshot`) and live as server-sent events following
the controller's `ChangeFeed` (`GET /api/stream`), and `GET /healthz`.

It owns the HTTP side only: what a snapshot holds is `Views.snapshot`'s, who may see it is
the gRPC services' rule with the same tokens (`Authorization: Bearer <token>`): an operator
sees every site, grid event and job; a tenant its own open jobs only; a site (agent) token
is refused (403); a missing or unknown one is 401. Browsers cannot put headers on an
EventSource, so the page reads the event stream with fetch(); the token never travels in a
URL. Every response carries a strict Content-Security-Policy (`default-src 'self'`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from aiohttp import web
from google.protobuf.json_format import MessageToDict

from scheduler.core import errors
from scheduler.server.interceptor import Authenticator, Principal
from scheduler.server.views import ChangeFeed, Views

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("dashboard_static")
MIN_INTERVAL_S = 0.5  # at most two snapshots a second per stream (changes in between are coalesced)
REFRESH_S = 2.0  # with no change for this long: a `: keepalive` comment, so the page knows it is live
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NO_STORE = {"Cache-Control": "no-store"}


def snapshot_json(views: Views, principal: Principal) -> str:
    """The snapshot this principal may see, as JSON (proto field names, every field present,
    64-bit integers as numbers), with `viewer`: who it was made for."""
    snapshot = views.snapshot(None if principal.role == "operator" else principal.name)
    body = MessageToDict(snapshot, always_print_fields_with_no_presence=True, preserving_proto_field_name=True, unquote_int64_if_possible=True)
    body["viewer"] = {"role": principal.role, "name": principal.name}
    return json.dumps(body, separators=(",", ":"))


class Dashboard:
    """The dashboard's aiohttp application and its listening socket."""

    def __init__(self, views: Views, changes: ChangeFeed, auth: Authenticator, min_interval_s: float = MIN_INTERVAL_S, refresh_s: float = REFRESH_S):
        self.views = views
        self.changes = changes
        self.auth = auth
        self.min_interval_s = min_interval_s
        self.refresh_s = refresh_s
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task] = set()  # open /api/stream handlers, ended on close
        self._index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        self.app = web.Application()
        self.app.on_response_prepare.append(self._secure)
        self.app.router.add_get("/", self.index)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/api/snapshot", self.snapshot)
        self.app.router.add_get("/api/stream", self.stream)
        self.app.router.add_static("/static/", STATIC_DIR, append_version=False)

    async def start(self, host: str, port: int) -> Dashboard:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for task in list(self._streams):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------- requests
    @staticmethod
    async def _secure(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)

    def _principal(self, request: web.Request) -> Principal:
        """The operator or tenant the request's bearer token belongs to; HTTP 401 for a
        missing or unknown token, 403 for a token of another role (a site's)."""
        metadata = [("authorization", request.headers.get("Authorization", ""))]
        try:
            try:
                return self.auth.principal(metadata, "operator")
            except errors.PermissionDenied:
                return self.auth.principal(metadata, "tenant")
        except errors.Unauthenticated:
            raise web.HTTPUnauthorized(text="a tenant or operator token is needed: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer", **NO_STORE}) from None
        except errors.PermissionDenied:
            raise web.HTTPForbidden(text="the dashboard takes tenant or operator tokens", headers=NO_STORE) from None

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text=self._index, content_type="text/html", headers=NO_STORE)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", headers=NO_STORE)

    async def snapshot(self, request: web.Request) -> web.Response:
        principal = self._principal(request)
        return web.Response(text=snapshot_json(self.views, principal), content_type="application/json", headers=NO_STORE)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `data: <snapshot JSON>` at once and after each change (coalesced),
        a `: keepalive` comment when nothing changed for `refresh_s`."""
        principal = self._principal(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no", **NO_STORE})
        await response.prepare(request)
        task = asyncio.current_task()
        self._streams.add(task)
        sent = None
        try:
            async for version in self.changes.follow(self.min_interval_s, self.refresh_s):
                if version == sent:
                    await response.write(b": keepalive\n\n")
                    continue
                sent = version
                await response.write(b"data: " + snapshot_json(self.views, principal).encode() + b"\n\n")
        except ConnectionResetError:
            return response  # the page went away
        finally:
            self._streams.discard(task)  # cancelled: the dashboard is closing
        return response  # pragma: no cover - follow() never ends


async def start_dashboard(views: Views, changes: ChangeFeed, auth: Authenticator, host: str, port: int, **settings) -> Dashboard:
    """The dashboard serving on host:port (port 0: any free port, then `.port`)."""
    dashboard = Dashboard(views, changes, auth, **settings)
    await dashboard.start(host, port)
    log.info("dashboard listening on %s:%d", host, dashboard.port)
    return dashboard
