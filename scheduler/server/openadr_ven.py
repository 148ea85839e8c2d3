"""The OpenADR 2.0b VEN: one openleadr client per enrolled program (config.openadr),
started and stopped with the leader's other loops (app.py `_lead` and `stop`).

Each VEN registers with its program's VTN (openleadr polls it at the frequency the VTN
asks), offers a TELEMETRY_USAGE report of each site's metered load (resource id: the site
id; the power state's last reading, meter W) at the interval the VTN picks, and answers
each event: the pure half (core/openadr.py) turns it into grid events and decides the
opt; this module posts them through `controller.post_grid_event` (by `openadr:<program>`,
so a modification number above the held one modifies them; a repost under the held
number keeps the notice first received, `openadr.keep_notice`), ends them early through
`controller.end_grid_event` when the VTN cancels the event (or a modification is opted
out of), logs the opt and its reason, and returns the opt to openleadr, which sends it
to the VTN. What a VEN did per event is kept in `opts` (event id -> the last Opt).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import warnings
from collections.abc import Iterable
from datetime import timedelta

from scheduler.core import openadr
from scheduler.core.errors import PowerplaneError
from scheduler.server.config import OpenAdrProgramConfig
from scheduler.server.controller import Controller

with warnings.catch_warnings():  # signxml, which openleadr imports, warns on import that DSA is deprecated (not used here)
    warnings.simplefilter("ignore")
    from openleadr import OpenADRClient, objects

log = logging.getLogger(__name__)


def program_of(config: OpenAdrProgramConfig) -> openadr.Program:
    return openadr.Program(config.name, tuple(config.sites), dict(config.baseline_w), dict(config.levels), config.market_node)


class ProgramVen:
    """The VEN of one program."""

    def __init__(self, config: OpenAdrProgramConfig, controller: Controller):
        self.config, self.program, self.controller = config, program_of(config), controller
        self.opts: dict[str, openadr.Opt] = {}
        self.client = self._client()

    def _client(self) -> OpenADRClient:
        """A fresh openleadr client (one that failed to register is closed for good)."""
        config, tls = self.config, self.config.tls
        client = OpenADRClient(
            ven_name=config.ven_name,
            vtn_url=config.vtn_url,
            ven_id=config.ven_id or None,
            cert=str(tls.cert_file) if tls else None,
            key=str(tls.key_file) if tls else None,
            ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
            vtn_fingerprint=(tls.vtn_fingerprint or None) if tls else None,
            disable_signature=tls is None,
            show_fingerprint=False,
        )
        client.add_handler("on_event", self.on_event)
        client.add_handler("on_update_event", self.on_event)
        interval = timedelta(seconds=config.report_interval_s)
        for site_id in config.sites:
            client.add_report(
                callback=functools.partial(self.metered_w, site_id),
                resource_id=site_id,
                measurement="real_power",
                unit="W",
                sampling_rate=objects.SamplingRate(min_period=interval, max_period=max(interval, timedelta(hours=1))),
                report_duration=max(interval, timedelta(hours=1)),
            )
        return client

    @property
    def registered(self) -> bool:
        return self.client.registration_id is not None

    def metered_w(self, site_id: str) -> float:
        """The site's metered load now (0 until its agent has reported)."""
        figures = self.controller.power.figures(site_id, self.controller.jobs, self.controller.clock())
        return figures.measured_w if figures is not None else 0.0

    async def on_event(self, event: dict) -> str:
        """An event, new or modified or cancelled: act on it and return the opt for the VTN."""
        adr = openadr.adr_event(event)
        name = f"OpenADR {self.program.name} event {adr.event_id} (modification {adr.modification})"
        events = openadr.grid_events(self.program, adr)
        if adr.cancelled:
            await self._end(self._posted(adr.event_id), f"cancelled by the VTN ({name})")
            previous = self.opts.get(adr.event_id)
            return previous.opt_type if previous else "optOut"
        now = self.controller.clock()
        floors = {e.site_id: self.controller.power.floor_without_inference_w(e.site_id, self.controller.jobs, now) for e in events if e.site_id}
        opt = openadr.decide(events, floors)
        self.opts[adr.event_id] = opt
        log.info("%s: %s: %s", name, opt.opt_type, opt.reason, extra={"openadr_program": self.program.name})
        if not opt.opt_in:
            await self._end(self._posted(adr.event_id), f"opted out of {name}: {opt.reason}")
            return opt.opt_type
        kept = {e.event_id for e in events}
        await self._end([i for i in self._posted(adr.event_id) if i not in kept], f"no longer asked by {name}")
        for grid_event in events:
            held = self.controller.power.grid.get(grid_event.event_id)
            grid_event = openadr.keep_notice(grid_event, held.event if held else None)
            try:
                await self.controller.post_grid_event(grid_event, by=f"openadr:{self.program.name}")
            except PowerplaneError as err:  # e.g. a modification of an event that has ended
                log.warning("%s: grid event %s not posted: %s", name, grid_event.event_id, err)
        return opt.opt_type

    def _posted(self, adr_event_id: str) -> list[str]:
        """The grid events an OpenADR event posted (any version: a modification may drop
        intervals), as the scheduler holds them."""
        return openadr.posted_by(self.program, adr_event_id, self.controller.power.grid)

    async def _end(self, event_ids: Iterable[str], reason: str) -> None:
        """End those of these grid events still in force."""
        for event_id in event_ids:
            record = self.controller.power.grid.get(event_id)
            if record is None or record.ended_at is not None or self.controller.clock() >= record.event.end:
                continue
            try:
                await self.controller.end_grid_event(event_id, None, reason)
            except PowerplaneError as err:
                log.warning("grid event %s not ended: %s", event_id, err)

    async def start(self) -> None:
        """Register with the VTN and start polling it (a client that failed before is replaced)."""
        if self.client.client_session is not None:
            self.client = self._client()
        await self.client.run()

    async def stop(self) -> None:
        if self.client.scheduler.running or self.client.client_session is not None:
            with contextlib.suppress(Exception):
                await self.client.stop()


class OpenAdrVens:
    """Every program's VEN; registration is retried in the background until it holds."""

    def __init__(self, programs: Iterable[OpenAdrProgramConfig], controller: Controller, retry_s: float = 30.0):
        self.vens = [ProgramVen(p, controller) for p in programs]
        self.retry_s = retry_s
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(ven), name=f"openadr-{ven.program.name}") for ven in self.vens]

    async def _run(self, ven: ProgramVen) -> None:
        while not ven.registered:
            try:
                await ven.start()
            except Exception as err:  # the VTN is away: try again later
                log.warning("OpenADR %s: registration with %s failed: %s", ven.program.name, ven.config.vtn_url, err)
            if not ven.registered:
                await asyncio.sleep(self.retry_s)
        log.info("OpenADR %s: registered with %s as %s", ven.program.name, ven.config.vtn_url, ven.client.ven_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for ven in self.vens:
            await ven.stop()
