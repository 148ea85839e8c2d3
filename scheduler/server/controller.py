"""The controller: the scheduler's in-memory state and the one place it changes.

It loads sites, grid events and the jobs it keeps in memory (unfinished and recent ones:
core/resident_jobs.py; older finished jobs are read from the store when asked for) at
start, or follows the leader's commits while it stands by warm (`catch_up`); it feeds events
(submissions, agent messages, cancels, grid events, ticks) to the pure core (the
job rules in core/runs.py, placement, and the power state machine core/power_state.py)
and applies each `Decision`: memory first (synchronously, so the next decision sees
it), then one durable group commit, then the events go to watchers and the orders to
agent sessions: the only way an order leaves. A failed commit is fatal: the process
stops and a restart reloads the store.

Recovery rule after a restart: every site starts DISCONNECTED with a fresh
`site_timeout_s` of grace, so agents that reconnect in time keep their runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from scheduler.core import runs, tenant_ops
from scheduler.core.cut_order import cut_ranks
from scheduler.core.decisions import Decision, Order, StartRun, StopRun
from scheduler.core.errors import InvalidArgument, NotFound, shown
from scheduler.core.grid import GridEvent, GridEventRecord
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import Job, JobEvent, JobSpec, JobState, new_job
from scheduler.core.mining import MiningPolicy
from scheduler.core.placement import SiteCapacity
from scheduler.core.power import SitePower
from scheduler.core.power_state import (
    DispatchDue,
    GridEventEnded,
    GridEventPosted,
    PowerRead,
    PowerReading,
    PowerSettings,
    PowerState,
    RunsReported,
    ScalingDue,
    SiteAttached,
    SiteResized,
    Stimulus,
)
from scheduler.core.priority import PreemptionPolicy, schedule_pass
from scheduler.core.resident_jobs import ResidentJobs
from scheduler.core.sites import GpuNode, Site, SiteState, is_overdue, site_state
from scheduler.core.validation import check_ids, validate_submission
from scheduler.server.committer import GroupCommitter
from scheduler.server.config import SchedulerConfig, tenancy_policy
from scheduler.server.views import ChangeFeed
from scheduler.store.base import Snapshot, Store

log = logging.getLogger(__name__)
WATCH_QUEUE_LIMIT = 10_000
SCHEDULE_PACING = 4.0  # after a pass, wait at least this many times as long as it took


class AgentSession:
    """One connected agent stream: orders queued here are written by its servicer."""

    def __init__(self, site_id: str):
        self.site_id = site_id
        self.outbox: asyncio.Queue[Order | None] = asyncio.Queue()

    def send(self, order: Order) -> None:
        self.outbox.put_nowait(order)

    def close(self) -> None:
        self.outbox.put_nowait(None)


class Watcher:
    def __init__(self, tenant: str, job_id: str):
        self.tenant = tenant
        self.job_id = job_id
        self.queue: asyncio.Queue[JobEvent | None] = asyncio.Queue(maxsize=WATCH_QUEUE_LIMIT)
        self.overflowed = False

    def offer(self, event: JobEvent) -> None:
        if event.tenant != self.tenant or (self.job_id and event.job_id != self.job_id) or self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True  # the stream ends; the client resumes from its last event id


def power_settings(config: SchedulerConfig) -> PowerSettings:
    return PowerSettings(
        policy=MiningPolicy(**config.mining.model_dump()),
        cap_lead_s=config.cap_lead_s,
        hashprice_usd_per_ph_day=config.hashprice_usd_per_ph_day,
        serve_cooldown_s=config.serve_cooldown_s,
        price_watches=tuple(w for feed in config.price_feeds for w in feed.watches()),
    )


class Controller:
    def __init__(self, store: Store, config: SchedulerConfig, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self.committer = GroupCommitter(store)
        self.regions = frozenset(config.regions)
        self.resident = ResidentJobs(config.memory.recent_jobs)
        self.jobs: JobTable = self.resident.table
        self.sites: dict[str, Site] = {}
        self.sessions: dict[str, AgentSession] = {}
        self.watchers: set[Watcher] = set()
        self._inflight: dict[str, asyncio.Future] = {}  # job_id -> its creation's commit
        self._kick = asyncio.Event()
        self._power_kick = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._changed_through: int | None = None  # the store's commits memory includes (None: not loaded yet)
        self.power = PowerState(power_settings(config))
        self.preemption = PreemptionPolicy(**config.preemption.model_dump())  # for priority (core/priority.py)
        self.tenancy = tenancy_policy(config)  # contracts and fair share (core/contracts.py); a reload swaps it
        self.power.give_way = cut_ranks(lambda: self.tenancy, lambda: {s.site_id: s.region for s in self.sites.values()}, self.power.sites)
        self.timings: Callable[[str, float], None] = lambda name, seconds: None  # how long a pass took (the metrics observe it)
        self.decided: Callable[[Decision], None] = lambda decision: None  # each decision, before it is applied (the metrics count it)
        self.changes = ChangeFeed()  # moves with every applied decision: the snapshots follow it

    # ----------------------------------------------------------------- life cycle
    async def load(self) -> None:
        """Read the store: sites, grid events, unfinished jobs and the `memory.recent_jobs`
        newest (the others are counted, and read when asked for)."""
        snapshot = await asyncio.get_running_loop().run_in_executor(None, self.committer.store.load, self.config.memory.recent_jobs)
        for job in snapshot.jobs:
            self.resident.add(job)
        self.jobs.count_elsewhere(snapshot.paged_out)
        self.resident.paged = bool(snapshot.paged_out)
        self._follow(snapshot)

    async def catch_up(self) -> int:
        """A warm standby follows the leader: the jobs its commits wrote since the last
        read, sites and grid events as they are now. Returns how many jobs changed."""
        changes = await asyncio.get_running_loop().run_in_executor(None, self.committer.store.changes_after, self._changed_through)
        old_floor = self.resident.floor
        for job in changes.jobs:
            self.resident.add(job)
        self.resident.evict([*self.resident.passed_floor(old_floor), *(j.job_id for j in changes.jobs)])
        self._follow(changes)
        return len(changes.jobs)

    def _follow(self, snapshot: Snapshot) -> None:
        self.power = PowerState(power_settings(self.config), snapshot.grid_events)
        self.power.give_way = cut_ranks(lambda: self.tenancy, lambda: {s.site_id: s.region for s in self.sites.values()}, self.power.sites)
        self.sites = {site.site_id: site for site in snapshot.sites}
        self._changed_through = snapshot.changed_through
        self.changes.bump()

    async def refresh(self) -> int:
        """Load the store the first time, then catch up with it (a standby keeping warm)."""
        if self._changed_through is None:
            await self.load()
            return len(self.jobs)
        return await self.catch_up()

    async def start(self, loops: bool = True) -> None:
        """Load the store (or catch up, after standing by warm) and start committing;
        `loops=False`: no background passes (a caller that drives scheduling, dispatch and
        scaling itself, e.g. a replay test)."""
        await self.refresh()
        now = self.clock()
        for site in self.sites.values():
            # Grace after a restart: no site is declared lost before it had a chance to reconnect.
            self.sites[site.site_id] = dataclasses.replace(site, connected=False, last_seen=now)
        self.committer.start()
        self._tasks = [] if not loops else [
            asyncio.create_task(self._schedule_loop(), name="schedule"),
            asyncio.create_task(self._liveness_loop(), name="liveness"),
            asyncio.create_task(self._power_loop(), name="power"),
            asyncio.create_task(self._scaling_loop(), name="serve-scaling"),
            asyncio.create_task(self._retention_loop(), name="retention"),
        ]
        log.info("controller started: %d jobs, %d sites loaded", len(self.jobs), len(self.sites))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for session in list(self.sessions.values()):
            session.close()
        for watcher in list(self.watchers):
            watcher.overflowed = True  # no more events: the stream ends, the client resumes elsewhere
            with contextlib.suppress(asyncio.QueueFull):
                watcher.queue.put_nowait(None)
        await self.committer.close()

    # ------------------------------------------------------------- applying
    async def apply(self, decision: Decision, sites: Iterable[Site] = ()) -> list[JobEvent]:
        """Apply a decision made on the current state. Must be called with no await
        between making the decision and this call."""
        sites = list(sites)
        self.decided(decision)
        self.jobs.take(decision)
        for site in sites:
            self.sites[site.site_id] = site
        self.changes.bump()
        for level, line, *ids in decision.notes:
            log.log(logging.WARNING if level == "warning" else logging.INFO, "%s", line, extra=ids[0] if ids else None)
        self._send(decision.urgent)  # mining targets: they change no job and do not wait for the disk
        if not (decision.writes or sites):
            self._send(decision.orders)
            return []
        self.resident.saving(decision.jobs, +1)
        try:
            ids = await self.committer.commit(decision.jobs, decision.events, sites, decision.grid)
        finally:
            self.resident.saving(decision.jobs, -1)
        events = [dataclasses.replace(e, event_id=i) for e, i in zip(decision.events, ids)]
        for event in events:
            log.info(
                "job %s: %s -> %s: %s",
                event.job_id,
                event.from_state.name if event.from_state is not None else "NEW",
                event.to_state.name,
                event.reason,
                extra={"job_id": event.job_id, "run_id": event.run_id, "site_id": event.site_id, "tenant": event.tenant},
            )
            job = self.jobs.get(event.job_id)
            if job is not None and job.last_event_id < event.event_id:
                self.jobs[event.job_id] = dataclasses.replace(job, last_event_id=event.event_id)
            for watcher in list(self.watchers):
                watcher.offer(event)
        self._send(decision.orders)
        self.resident.evict(job.job_id for job in decision.jobs)  # finished ones below the floor: in the store now
        if any(e.to_state in (JobState.PENDING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED) for e in events):
            self._kick.set()  # capacity freed or work queued: schedule soon
        return events

    def _send(self, orders: Iterable[Order]) -> None:
        """Send a committed decision's orders; the power state keeps starts that wait for power."""
        orders = self.power.hold_starts(orders)
        if self.power.dirty:
            self._power_kick.set()
        for order in orders:
            session = self.sessions.get(order.site_id)
            if session is None:
                log.info("site %s not connected; %s waits for its reconnect", order.site_id, type(order).__name__)
                continue
            session.send(order)

    # ------------------------------------------------------------- tenants
    async def submit(self, tenant: str, client_request_id: str, spec: JobSpec) -> tuple[Job, bool]:
        validate_submission(client_request_id, spec, self.regions)
        existing = self.resident.by_request.get((tenant, client_request_id))
        if existing is None and self.resident.paged:  # an old request's job may be in the store only
            stored = await self.committer.read(self.committer.store.job_by_request, tenant, client_request_id)
            existing = self.resident.by_request.get((tenant, client_request_id))  # a twin submitted meanwhile
            if existing is None and stored is not None:
                return stored, False
        if existing is not None:
            inflight = self._inflight.get(existing)
            if inflight is not None:
                await asyncio.shield(inflight)
            return self.jobs[existing], False
        started = time.perf_counter()
        job, event = new_job(f"job-{uuid.uuid4().hex[:16]}", tenant, client_request_id, spec, self.resident.next_seq(), self.clock())
        self.resident.add(job)
        future = asyncio.get_running_loop().create_future()
        self._inflight[job.job_id] = future
        try:
            await self.apply(Decision(jobs=[job], events=[event]))
            future.set_result(None)
        except BaseException as err:
            future.set_exception(err)
            raise
        finally:
            del self._inflight[job.job_id]
        self._kick.set()
        self.timings("submit", time.perf_counter() - started)
        return self.jobs[job.job_id], True

    async def job_of(self, tenant: str, job_id: str) -> Job:
        """The tenant's job, from memory or (a finished job paged out) from the store."""
        check_ids(job_id=job_id)
        job = self.jobs.get(job_id)
        if job is None and self.resident.paged:
            job = await self.committer.read(self.committer.store.get_job, job_id)
        if job is None or job.tenant != tenant or job.job_id in self._inflight:
            raise NotFound(f"job {shown(job_id)} not found")
        return job

    async def list_jobs(self, tenant: str, states: frozenset[JobState], page_size: int, page_token: str) -> tuple[list[Job], str]:
        """Newest first: from memory, then below its floor from the store merged with memory.
        The page token is the seq of the last job returned."""
        if page_token:
            check_ids(page_token=page_token)
            if not page_token.isdigit():
                raise InvalidArgument("page_token is not one this server issued")
            before = int(page_token)
        else:
            before = self.resident.seq + 1
        hidden = self._inflight.keys()
        page, more = self.resident.newest_first(tenant, before, states, page_size, hidden)
        if len(page) < page_size and self.resident.paged:
            below = min(before, self.resident.floor + 1)
            in_memory = self.resident.below_floor(tenant, below)
            need = page_size - len(page)
            stored = await self.committer.read(self.committer.store.tenant_jobs, tenant, below, states, need + len(in_memory) + 1)
            rest, more = self.resident.merge_page(stored, in_memory, states, need, self._inflight.keys())
            page += rest
        else:
            more = more and len(page) == page_size
        return page, (str(page[-1].seq) if more and page else "")

    async def cancel(self, tenant: str, job_id: str, reason: str) -> Job:
        job = await self.job_of(tenant, job_id)
        decision = runs.cancel(job, reason, self.clock())
        await self.apply(decision)
        return next((j for j in reversed(decision.jobs) if j.job_id == job_id), self.jobs.get(job_id, job))

    async def reprioritize(self, tenant: str, job_id: str, priority: int) -> Job:
        """A write: the job at its new priority (core/tenant_ops.py); the next pass reorders the queue."""
        job = await self.job_of(tenant, job_id)
        decision = tenant_ops.reprioritize(job, priority, self.clock())
        await self.apply(decision)
        self._kick.set()
        return decision.jobs[-1] if decision.jobs else job

    async def cancel_jobs(self, tenant: str, selector: dict[str, str], states: frozenset[JobState], reason: str, dry_run: bool) -> tuple[list[Job], int]:
        """A write (unless dry_run): cancel the tenant's unfinished jobs matching `selector`, at most
        tenant_ops.MAX_CANCEL; returns them as they are now and how many matched in all."""
        candidates = (j for j in [*self.jobs.pending(), *self.jobs.active()] if j.job_id not in self._inflight)
        chosen, matched, decision = tenant_ops.cancel_by_label(candidates, tenant, selector, states, reason, self.clock(), dry_run)
        await self.apply(decision)
        latest = {j.job_id: j for j in decision.jobs}
        return [latest.get(j.job_id, j) for j in chosen], matched

    def watch(self, tenant: str, job_id: str) -> Watcher:
        watcher = Watcher(tenant, job_id)
        self.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    # ------------------------------------------------------------- agents
    async def attach(
        self, site_id: str, region: str, inventory: tuple[GpuNode, ...], reports: list[runs.RunReport], power: SitePower | None = None
    ) -> AgentSession:
        """An agent registered: replace any older stream, reconcile its runs."""
        if region not in self.regions:
            raise InvalidArgument(f"region {shown(region)} is not one of this scheduler's regions ({', '.join(sorted(self.regions))})")
        old = self.sessions.pop(site_id, None)
        if old is not None:
            old.close()
        session = AgentSession(site_id)
        self.sessions[site_id] = session
        now = self.clock()
        previous = self.sites.get(site_id) or Site(site_id=site_id, region=region)
        site = dataclasses.replace(previous, region=region, inventory=inventory, connected=True, last_seen=now, released=False)
        self._power(SiteAttached(site_id, power))
        decision = runs.on_register(site_id, self.jobs.on_site(site_id), {r.run_id: r for r in reports}, self.jobs, now)
        await self.apply(decision, [site])
        self._kick.set()
        log.info("site %s registered (%s, %d GPUs, %d runs reported)", site_id, region, site.gpus_total, len(reports))
        return session

    async def detach(self, session: AgentSession) -> None:
        if self.sessions.get(session.site_id) is not session:
            return  # replaced by a newer stream already
        del self.sessions[session.site_id]
        site = self.sites[session.site_id]
        await self.apply(Decision(), [dataclasses.replace(site, connected=False)])
        log.warning("site %s disconnected", session.site_id)

    async def on_nodes_changed(self, site_id: str, inventory: tuple[GpuNode, ...]) -> None:
        """The site's GPU nodes changed (a node joined late, died, or its GPUs changed):
        placement and the site's power model use the new list from the next pass, at once."""
        self.heard_from(site_id)
        site = self.sites.get(site_id)
        if site is None or site.inventory == inventory:
            return
        updated = dataclasses.replace(site, inventory=inventory)
        self._power(SiteResized(site_id, updated.gpus_total))
        await self.apply(Decision(), [updated])
        self._kick.set()
        log.info("site %s nodes changed: %d GPUs on %d nodes (was %d)", site_id, updated.gpus_total, len(inventory), site.gpus_total)

    def heard_from(self, site_id: str) -> None:
        site = self.sites.get(site_id)
        if site is not None:
            self.sites[site_id] = dataclasses.replace(site, last_seen=self.clock())

    async def on_run_reports(self, site_id: str, reports: Iterable[runs.RunReport]) -> None:
        self.heard_from(site_id)
        reports = tuple(reports)
        decision = runs.on_run_reports(self.jobs, site_id, reports, self.clock())
        decision.extend(self._power(RunsReported(site_id, reports)))
        if decision:
            await self.apply(decision)

    async def on_reading(self, site_id: str, reading: PowerReading) -> None:
        """An agent's power reading (with its heartbeat)."""
        await self.apply(self._power(PowerRead(site_id, reading)))

    # ------------------------------------------------------------- power
    def _power(self, stimulus: Stimulus) -> Decision:
        """One step of the power state machine; a dispatch it made due runs soon."""
        decision = self.power.handle(stimulus, self.jobs, self.clock())
        if self.power.dirty:
            self._power_kick.set()
        return decision

    async def post_grid_event(self, event: GridEvent, by: str = "") -> tuple[GridEventRecord, bool]:
        """Record a grid event (idempotent by id; a higher modification replaces it) and act on it at once."""
        created = event.event_id not in self.power.grid
        await self.apply(self._power(GridEventPosted(event, frozenset(self.sites), by)))
        self._kick.set()
        return self.power.grid[event.event_id], created

    async def end_grid_event(self, event_id: str, end: float | None, reason: str) -> GridEventRecord:
        """End a grid event early (`end` None: now) and act on it at once."""
        await self.apply(self._power(GridEventEnded(event_id, end, reason)))
        self._kick.set()
        return self.power.grid[event_id]

    async def dispatch_power(self, sweep: bool = False) -> list[JobEvent]:
        """Dispatch every site with news (`sweep`: every managed site), applied."""
        return await self.apply(self._power(DispatchDue(sweep)))

    async def scale_services(self) -> list[JobEvent]:
        """One Serve scaling pass (demand arrives with heartbeats), applied."""
        return await self.apply(self._power(ScalingDue({s.site_id: s.gpus_total for s in self.sites.values()})))

    # ------------------------------------------------------------- operators
    def site_state(self, site: Site) -> SiteState:
        return site_state(site, self.clock(), self.config.site_timeout_s)

    def site_usage(self) -> dict[str, tuple[int, int]]:
        """site_id -> (GPUs used, active runs); a Serve service's GPUs follow its replicas."""
        return self.jobs.gpus_in_use()

    def site(self, site_id: str) -> Site:
        check_ids(site_id=site_id)
        site = self.sites.get(site_id)
        if site is None:
            raise NotFound(f"site {shown(site_id)} not found")
        return site

    async def set_drained(self, site_id: str, drained: bool, reason: str) -> Site:
        site = self.site(site_id)
        updated = dataclasses.replace(site, drained=drained, drain_reason=(reason or "drained by operator") if drained else "")
        await self.apply(Decision(), [updated])
        self._kick.set()
        return updated

    def runs_on(self, site_id: str) -> list[Job]:
        return self.jobs.on_site(site_id)

    # ------------------------------------------------------------- loops
    def kick_scheduling(self) -> None:
        self._kick.set()

    def capacities(self, smallest_need: int = 0) -> list[SiteCapacity]:
        """Every site as placement sees it (`smallest_need`: the fewest GPUs a pending job needs)."""
        usage = self.site_usage()
        now = self.clock()
        result = []
        for site in self.sites.values():
            state = self.site_state(site)
            why = "" if state == SiteState.READY else f"drained ({site.drain_reason})" if state == SiteState.DRAINED else state.name.lower()
            gpus = (site.gpus_total, usage.get(site.site_id, (0, 0))[0])
            result.append(self.power.site_capacity(site.site_id, site.region, gpus, why, self.jobs, now, smallest_need))
        return result

    async def schedule_once(self) -> None:
        pending = [j for j in self.jobs.pending() if j.job_id not in self._inflight]
        if not pending:
            return
        capacities = self.capacities(min(j.spec.total_gpus for j in pending))
        decision = schedule_pass(pending, capacities, self.jobs, self.jobs.on_site, self.preemption, self.clock(), self.tenancy)
        if decision:
            await self.apply(decision)

    async def _schedule_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=self.config.schedule_interval_s)
            except TimeoutError:
                pass
            self._kick.clear()
            started = asyncio.get_running_loop().time()
            try:
                await self.schedule_once()
            except Exception:
                log.exception("scheduling pass failed")
            # Coalesce bursts of submissions into one pass, and keep passes over a long queue
            # to a fifth of the loop's time: the rest is for the API (submits, agents).
            spent = asyncio.get_running_loop().time() - started
            self.timings("schedule", spent)
            await asyncio.sleep(max(0.02, SCHEDULE_PACING * spent))

    async def check_liveness(self) -> None:
        now = self.clock()
        timeout = self.config.site_timeout_s
        for site in list(self.sites.values()):
            if not is_overdue(site, now, timeout):
                continue
            session = self.sessions.pop(site.site_id, None)
            if session is not None:
                session.close()  # the stream is up but silent: treat it as gone
            log.warning("site %s unreachable for more than %gs: releasing its runs", site.site_id, timeout)
            decision = runs.release_site(site.site_id, self.jobs.on_site(site.site_id), timeout, now)
            await self.apply(decision, [dataclasses.replace(site, connected=False, released=True)])
        active = self.jobs.active()  # the rules below only touch RUNNING and PREEMPTED jobs
        decision = runs.enforce_max_runtime(active, now)
        decision.extend(runs.overdue_preemptions(active, now))
        if decision:
            await self.apply(decision)

    async def _power_loop(self) -> None:
        """Dispatch sites with news promptly and every managed site once per power_interval_s."""
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._power_kick.wait(), timeout=self.config.power_interval_s)
            self._power_kick.clear()
            sweep = loop.time() >= next_sweep
            if sweep:
                next_sweep = loop.time() + self.config.power_interval_s
            started = loop.time()
            try:
                await self.dispatch_power(sweep)
            except Exception:
                log.exception("power dispatch failed")
            self.timings("dispatch", loop.time() - started)

    async def _scaling_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.power_interval_s)
            try:
                await self.scale_services()
            except Exception:
                log.exception("serve scaling pass failed")

    async def _liveness_loop(self) -> None:
        period = min(1.0, self.config.site_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            try:
                await self.check_liveness()
            except Exception:
                log.exception("liveness check failed")

    async def apply_retention(self) -> tuple[int, int]:
        """Compact the event log to its newest `retention.events` and drop price events
        ended `retention.prices_s` ago, from the store and from memory: (events, prices) gone."""
        retention, store = self.config.retention, self.committer.store
        events = await self.committer.read(store.compact_events, retention.events)
        prices = self.power.expired_prices(self.clock() - retention.prices_s)
        if prices:
            await self.committer.read(store.delete_grid_events, prices)
            self.power.forget(prices)
        if events or prices:
            log.info("retention: %d events compacted, %d ended price events dropped", events, len(prices))
        return events, len(prices)

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention.interval_s)
            try:
                await self.apply_retention()
            except Exception:
                log.exception("retention failed")


__all__ = ["AgentSession", "Controller", "StartRun", "StopRun", "Watcher"]
