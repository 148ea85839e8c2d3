"""What people see of the scheduler's state, built in one place: sites with their power
(GetSite, ListSites), grid events (ListGridEvents), jobs as their tenants see them, and
the power snapshot that WatchSites streams, `powerplane top` draws and the web dashboard
renders (as JSON). One computation, so every view shows the same figures.

`ChangeFeed` is how the views learn that something changed: the controller moves its
version with every decision it applies, and followers wait on it (coalesced, so a burst
of changes costs one snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from scheduler.api import convert
from scheduler.api.convert_power import fleet_power_to_proto, grid_status_to_proto
from scheduler.api.v1 import operator_pb2, types_pb2
from scheduler.core.grid import GridEventState
from scheduler.core.jobs import Job, JobKind, JobState
from scheduler.core.sites import Site

RECENT_EVENTS_S = 3600.0  # ended grid events stay in a snapshot this long
MAX_SNAPSHOT_JOBS = 2000  # the oldest jobs not yet ended, if there are more
DEFAULT_MIN_INTERVAL_S = 0.5
DEFAULT_REFRESH_S = 5.0


class ChangeFeed:
    """A version that moves with every change of the scheduler's state, and a way to wait
    for it to move."""

    def __init__(self) -> None:
        self.version = 0
        self._moved = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait_past(self, seen: int, timeout_s: float) -> int:
        """The version once it is past `seen`, or after `timeout_s` whatever it is."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), timeout_s)
        return self.version

    async def follow(self, min_interval_s: float = DEFAULT_MIN_INTERVAL_S, refresh_s: float = DEFAULT_REFRESH_S) -> AsyncIterator[int]:
        """Yields at once, then after each change (at most once per `min_interval_s`) and at
        least once per `refresh_s`."""
        min_interval_s = max(0.1, min_interval_s or DEFAULT_MIN_INTERVAL_S)
        refresh_s = max(min_interval_s, refresh_s or DEFAULT_REFRESH_S)
        seen = self.version
        while True:
            yield seen
            await asyncio.sleep(min_interval_s)  # changes in this window are coalesced into one
            seen = await self.wait_past(seen, refresh_s - min_interval_s)


class Views:
    """Protobuf views of the controller's state (the controller is typed loosely to keep
    this module free of it: anything with its attributes will do)."""

    def __init__(self, controller):
        self.controller = controller

    # ------------------------------------------------------------- sites
    def power_status(self, site_id: str) -> operator_pb2.SitePowerStatus | None:
        controller = self.controller
        figures = controller.power.figures(site_id, controller.jobs, controller.clock())
        if figures is None:
            return None
        return operator_pb2.SitePowerStatus(
            cap_w=figures.cap_w,
            interconnect_cap_w=figures.interconnect_cap_w,
            committed_w=figures.committed_w,
            measured_w=figures.measured_w,
            ai_w=figures.ai_w,
            mining_w=figures.mining_w,
            mining_target_w=figures.mining_target_w,
            price_usd_per_mwh=figures.price_usd_per_mwh,
            emergency=figures.emergency,
            fleets=[fleet_power_to_proto(fleet_id, measured, target) for fleet_id, measured, target in figures.fleets],
            ai_it_w=figures.ai_it_w,
            mining_it_w=figures.mining_it_w,
            overhead_w=figures.overhead_w,
            computed_w=figures.computed_w,
            meter_source=int(figures.meter_source),
            meter_disagrees=figures.meter_disagrees,
        )

    def site(self, site: Site, usage: dict[str, tuple[int, int]] | None = None) -> operator_pb2.Site:
        usage = self.controller.site_usage() if usage is None else usage
        used, active = usage.get(site.site_id, (0, 0))
        msg = convert.site_to_proto(site, self.controller.site_state(site), used, active)
        power = self.power_status(site.site_id)
        if power is not None:
            msg.power.CopyFrom(power)
        return msg

    def sites(self) -> list[operator_pb2.Site]:
        usage = self.controller.site_usage()
        return [self.site(s, usage) for s in sorted(self.controller.sites.values(), key=lambda s: s.site_id)]

    def site_detail(self, site: Site, usage: dict[str, tuple[int, int]] | None = None) -> operator_pb2.SiteDetail:
        runs = [
            operator_pb2.SiteRun(run_id=j.run_id, job_id=j.job_id, tenant=j.tenant, state=int(j.state), gpus=j.total_gpus, power_fraction=j.power_fraction)
            for j in sorted(self.controller.runs_on(site.site_id), key=lambda j: j.seq)
        ]
        return operator_pb2.SiteDetail(site=self.site(site, usage), inventory=convert.inventory_to_proto(site.inventory), runs=runs)

    # ------------------------------------------------------------- grid events
    def grid_events(self, site_id: str = "", active_only: bool = False, ended_since: float | None = None) -> list[operator_pb2.GridEventStatus]:
        """Grid events by arrival; `ended_since`: leave out those that ended before it."""
        now = self.controller.clock()
        power = self.controller.power
        found = []
        for record in sorted(power.grid.values(), key=lambda r: (r.received_at, r.event.event_id)):
            event = record.event
            if site_id and event.site_id != site_id:
                continue
            ended = event.state(now) == GridEventState.ENDED
            if ended and (active_only or (ended_since is not None and event.end < ended_since)):
                continue
            found.append(grid_status_to_proto(record, now, power.met(record)))
        return found

    # ------------------------------------------------------------- jobs
    def job(self, job: Job) -> types_pb2.Job:
        """A job as its tenant sees it; one placed but held for power says why."""
        config = self.controller.config
        uri = config.checkpoint_uri(job.tenant, job.job_id, job.spec.checkpoint_uri) if job.spec.kind == JobKind.TRAINING else ""
        msg = convert.job_to_proto(job, uri)
        if job.state in (JobState.SCHEDULED, JobState.RUNNING) and job.site_id:
            msg.pending_reason = msg.pending_reason or self.controller.power.waiting_reason(job.site_id, job.job_id)
        return msg

    def open_jobs(self, tenant: str | None = None) -> list[Job]:
        """Jobs not yet ended, oldest first: every tenant's, or one tenant's."""
        jobs = self.controller.jobs
        open_jobs = sorted((j for j in (*jobs.pending(), *jobs.active()) if tenant is None or j.tenant == tenant), key=lambda j: j.seq)
        return open_jobs[:MAX_SNAPSHOT_JOBS]

    # ------------------------------------------------------------- the snapshot
    def snapshot(self, tenant: str | None = None) -> operator_pb2.PowerSnapshot:
        """Everything for an operator (`tenant` None); for a tenant, its own open jobs only."""
        controller = self.controller
        now = controller.clock()
        snapshot = operator_pb2.PowerSnapshot(at=convert.timestamp(now), version=controller.changes.version)
        if tenant is None:
            usage = controller.site_usage()
            snapshot.sites.extend(self.site_detail(s, usage) for s in sorted(controller.sites.values(), key=lambda s: s.site_id))
            snapshot.grid_events.extend(self.grid_events(ended_since=now - RECENT_EVENTS_S))
        snapshot.jobs.extend(self.job(j) for j in self.open_jobs(tenant))
        return snapshot
