"""The power keeper: the scheduler shell's side of every site's power.

It holds what the pure dispatch pass (scheduler/core/dispatch.py) needs and cannot
know by itself: each site's power profile (from its agent's registration), the
mining targets sent and what each fleet may still draw (`held`, from the agent's
readings, see core/admission.py), runs stopping, start orders waiting for power,
and the grid events (persisted, idempotent by event id). It runs the pass for a
site on every reading, grid event and placement and once per `power_interval_s`,
and applies the result: targets and run power caps go to the agent at once,
preemptions are job transitions committed like any other, starts are released.

A site whose agent gives no interconnect cap does not manage power: its starts
go out at once and placement counts GPUs only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scheduler.core import grid, runs
from scheduler.core.admission import held_after_reading, held_after_target
from scheduler.core.decisions import CapRunPower, Decision, Order, SetMiningTargets, StartRun
from scheduler.core.dispatch import SiteInputs, dispatch_site
from scheduler.core.errors import FailedPrecondition, shown
from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord
from scheduler.core.jobs import Job, JobKind, JobState
from scheduler.core.ledger import AiClaim, SiteLedger, claim_for
from scheduler.core.mining import FleetState, MiningPolicy, expected_price
from scheduler.core.power import SitePower, watts_text

if TYPE_CHECKING:
    from scheduler.server.controller import Controller

log = logging.getLogger(__name__)
MAX_RESPONSE_LINES = 500
TARGET_TOLERANCE_W = 1.0


@dataclass(frozen=True)
class PowerReading:
    """What an agent's heartbeat says about power."""

    fleets: dict[str, tuple[float, float]]  # fleet_id -> (measured W, the target it ramps to)
    it_w: float
    gpu_w: float
    meter_w: float
    local_actions: tuple[tuple[float, str], ...] = ()
    active_runs: frozenset[str] = frozenset()


@dataclass
class SiteShell:
    power: SitePower
    targets: dict[str, float] = field(default_factory=dict)  # last sent to the agent
    held: dict[str, float] = field(default_factory=dict)  # the most each fleet may draw now
    states: dict[str, FleetState] = field(default_factory=dict)
    reading: PowerReading | None = None
    stopping: dict[str, AiClaim] = field(default_factory=dict)  # run_id -> claim of a run ordered to stop
    held_starts: dict[str, StartRun] = field(default_factory=dict)  # job_id -> start waiting for power
    waiting_reasons: dict[str, str] = field(default_factory=dict)
    sent: tuple | None = None  # (targets, cap, cap_event_active) as last sent
    committed_w: float = 0.0
    price: float = 0.0
    planned: set[str] = field(default_factory=set)  # cap cuts planned for already: they stay planned

    def __post_init__(self) -> None:
        # Until the agent reports, every fleet may be drawing its full power.
        self.held = {f.fleet_id: f.max_w for f in self.power.fleets}


class PowerKeeper:
    def __init__(self, controller: Controller, clock: Callable[[], float] = time.time):
        self.controller = controller
        self.config = controller.config
        self.clock = clock
        self.policy = MiningPolicy(**self.config.mining.model_dump())
        self.sites: dict[str, SiteShell] = {}
        self.grid: dict[str, GridEventRecord] = {}
        self._dirty: set[str] = set()
        self._kick = asyncio.Event()
        self._pending_writes: set[asyncio.Task] = set()

    def load(self, records: Iterable[GridEventRecord]) -> None:
        for record in records:
            self.grid[record.event.event_id] = record

    # ------------------------------------------------------------- sites
    def attach(self, site_id: str, power: SitePower | None) -> None:
        old = self.sites.pop(site_id, None)
        if power is None:
            return
        shell = SiteShell(power)
        if old is not None:  # runs still stopping and starts waiting survive a reconnect
            shell.stopping, shell.held_starts = old.stopping, old.held_starts
        self.sites[site_id] = shell
        self.request(site_id)

    def resize(self, site_id: str, gpus: int) -> None:
        """The site's GPU count changed (nodes joined or left): plan with the new count."""
        shell = self.sites.get(site_id)
        if shell is not None and shell.power.gpus != gpus:
            shell.power = dataclasses.replace(shell.power, gpus=gpus)
            self.request(site_id)

    def manages(self, site_id: str) -> bool:
        return site_id in self.sites

    def request(self, site_id: str) -> None:
        """Run the site's dispatch pass soon."""
        self._dirty.add(site_id)
        self._kick.set()

    def gate(self, order: StartRun) -> bool:
        """True: send the start now. False: it waits for power (dispatch releases it)."""
        shell = self.sites.get(order.site_id)
        if shell is None:
            return True
        shell.held_starts[order.job_id] = order
        self.request(order.site_id)
        return False

    def on_reading(self, site_id: str, reading: PowerReading) -> None:
        shell = self.sites.get(site_id)
        if shell is None:
            return
        shell.reading = reading
        for fleet_id, (measured, acked) in reading.fleets.items():
            if fleet_id in shell.targets:
                shell.held[fleet_id] = held_after_reading(shell.held.get(fleet_id, measured), shell.targets[fleet_id], measured, acked)
        for run_id in [r for r in shell.stopping if r not in reading.active_runs]:
            del shell.stopping[run_id]
        self._check_events(site_id, shell, reading)
        if reading.local_actions:
            record = self._record_in_force(site_id, self.clock())
            lines = [f"{time.strftime('%H:%M:%S', time.gmtime(at))} agent {site_id} by itself: {what}" for at, what in reading.local_actions]
            for line in lines:
                log.warning("%s", line)
            if record is not None:
                self._persist([self._append(record, lines)])
        self.request(site_id)

    def run_ended(self, site_id: str, run_id: str) -> None:
        shell = self.sites.get(site_id)
        if shell is not None and shell.stopping.pop(run_id, None) is not None:
            self.request(site_id)

    # ------------------------------------------------------------- grid events
    async def post(self, event: GridEvent) -> tuple[GridEventRecord, bool]:
        """Record an event (idempotent by id) and act on it at once."""
        existing = self.grid.get(event.event_id)
        if existing is not None:
            if existing.event != event and dataclasses.replace(event, start=existing.event.start) != existing.event:
                raise FailedPrecondition(f"grid event {shown(event.event_id)} was already posted with different content")
            return existing, False
        grid.validate_event(event, self.controller.sites)
        record = GridEventRecord(event, self.clock())
        self.grid[event.event_id] = record
        await self.controller.apply(Decision(), grid=[record])
        log.info("grid event %s: %s", event.event_id, event.describe())
        affected = list(self.sites) if event.kind in (GridEventKind.PRICE, GridEventKind.HASHPRICE) else [event.site_id]
        for site_id in affected:  # curtailment never waits for a scheduling cycle
            if site_id in self.sites:
                await self.dispatch(site_id)
        self.controller.kick_scheduling()
        return self.grid[event.event_id], True

    def events(self) -> list[GridEvent]:
        return [r.event for r in self.grid.values()]

    def _record_in_force(self, site_id: str, now: float) -> GridEventRecord | None:
        events = self.events()
        source = grid.emergency(events, site_id, now)
        if source is None and site_id in self.sites:
            source = self.planning_cap(site_id, self.sites[site_id], now)[1]
        return self.grid.get(source.event_id) if source is not None else None

    def _append(self, record: GridEventRecord, lines: list[str]) -> GridEventRecord:
        updated = dataclasses.replace(record, response=(*record.response, *lines)[-MAX_RESPONSE_LINES:])
        self.grid[record.event.event_id] = updated
        return updated

    def _check_events(self, site_id: str, shell: SiteShell, reading: PowerReading) -> None:
        """Count a reading against every cap limit and emergency it must meet now."""
        now = self.clock()
        changed = []
        for record in list(self.grid.values()):
            event = record.event
            if event.site_id != site_id or event.kind not in (GridEventKind.CAP_LIMIT, GridEventKind.EMERGENCY):
                continue
            deadline = event.deadline if event.kind == GridEventKind.CAP_LIMIT else event.start + self.lead_s(site_id)
            if not deadline <= now < event.end:
                continue
            if event.kind == GridEventKind.CAP_LIMIT:
                short = reading.meter_w > event.cap_w + TARGET_TOLERANCE_W
                what = f"meter {watts_text(reading.meter_w)} over the cap {watts_text(event.cap_w)}"
            else:
                floor = {f.fleet_id: f.standby_w for f in shell.power.fleets}
                short = any(measured > floor.get(fid, 0.0) + TARGET_TOLERANCE_W for fid, (measured, _) in reading.fleets.items())
                what = "mining still above its paused floor"
            updated = dataclasses.replace(record, readings_in_force=record.readings_in_force + 1, breaches=record.breaches + short)
            if short:
                log.warning("grid event %s not met at %s: %s", event.event_id, site_id, what)
                if record.breaches == 0:
                    updated = self._append(updated, [f"{time.strftime('%H:%M:%S', time.gmtime(now))} NOT MET: {what}"])
            self.grid[event.event_id] = updated
            if short or record.readings_in_force == 0:
                changed.append(updated)
        if changed:
            self._persist(changed)

    def _persist(self, records: list[GridEventRecord]) -> None:
        task = asyncio.get_running_loop().create_task(self.controller.apply(Decision(), grid=records))
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    def met(self, record: GridEventRecord, now: float) -> bool:
        """Cap limits and emergencies: read while in force and never short; prices: once applied."""
        if record.event.kind in (GridEventKind.PRICE, GridEventKind.HASHPRICE):
            return True
        return record.met

    # ------------------------------------------------------------- dispatch
    def lead_s(self, site_id: str) -> float:
        """How long before a cap cut the site must start: its slowest ramp-down plus cap_lead_s."""
        fleets = self.sites[site_id].power.fleets
        return max((f.model.ramp_down_s for f in fleets), default=0.0) + self.config.cap_lead_s

    def planning_lead_s(self, site_id: str, jobs: Iterable[Job] | None = None) -> float:
        """How early a cap cut is planned for: `lead_s` plus the longest checkpoint grace of
        training running there (`jobs`: the site's runs, when the caller has them already),
        so a run preempted for the cut can checkpoint before it bites."""
        jobs = self.controller.runs_on(site_id) if jobs is None else jobs
        graces = [j.spec.checkpoint_grace_s for j in jobs if j.state == JobState.RUNNING and j.spec.kind == JobKind.TRAINING]
        return self.lead_s(site_id) + max(graces, default=0)

    def grace_left_s(self, site_id: str, inputs: SiteInputs, now: float) -> float | None:
        """The most checkpoint grace a run preempted now may get: none in an emergency or
        under a cap already in force, else until the planned cut's deadline less the site's
        lead (the run's power must be gone as early as mining's would be)."""
        if inputs.emergency:
            return 0.0
        events = self.events()
        shell = self.sites[site_id]
        if grid.enforced_cap(shell.power.cap_w, events, site_id, now) <= inputs.cap_w + TARGET_TOLERANCE_W:
            return 0.0  # the cap we plan for is already the one in force
        source = self.planning_cap(site_id, shell, now)[1]
        if source is None:
            return None
        return max(0.0, source.deadline - self.lead_s(site_id) - now)

    def _claims(self, site_id: str, shell: SiteShell, jobs: Iterable[Job]) -> tuple[list[AiClaim], list[AiClaim], list[AiClaim]]:
        running, waiting, stopping = [], [], list(shell.stopping.values())
        stopping += self.controller.scaler.stopping_claims(site_id)  # replicas a Serve run is giving up
        for job in jobs:
            claim = claim_for(job)
            held = shell.held_starts.get(job.job_id)
            if job.state in (JobState.CANCELLING, JobState.PREEMPTED):
                if job.run_id not in shell.stopping:  # a preempted run checkpointing still draws
                    stopping.append(claim)
            elif held is not None and held.run_id == job.run_id and job.state == JobState.SCHEDULED:
                waiting.append(claim)
            else:
                running.append(claim)
        live = {c.job_id for c in waiting}
        shell.held_starts = {j: o for j, o in shell.held_starts.items() if j in live}
        waiting.sort(key=lambda c: (-c.priority, c.seq))
        return running, waiting, stopping

    def planning_cap(self, site_id: str, shell: SiteShell, now: float, jobs: Iterable[Job] | None = None) -> tuple[float, GridEvent | None]:
        """grid.planning_cap with the site's planning lead; a cut once planned for stays planned
        (the lead shrinks when preempted training leaves: mining must not bounce back up)."""
        events = self.events()
        cap, source = grid.planning_cap(shell.power.cap_w, events, site_id, now, self.planning_lead_s(site_id, jobs))
        if source is not None:
            shell.planned.add(source.event_id)
        for event_id in list(shell.planned):
            record = self.grid.get(event_id)
            if record is None or now >= record.event.end:
                shell.planned.discard(event_id)
            elif record.event.cap_w < cap:
                cap, source = record.event.cap_w, record.event
        return cap, source

    def inputs_for(self, site_id: str, shell: SiteShell, now: float) -> tuple[SiteInputs, str]:
        events = self.events()
        jobs = self.controller.runs_on(site_id)  # one scan of the site's runs for the whole pass
        cap, source = self.planning_cap(site_id, shell, now, jobs)
        alarm = grid.emergency(events, site_id, now)
        cause = (alarm or source).describe() if (alarm or source) else f"site cap {watts_text(cap)}"
        forecast, real_time = grid.price_now(events, shell.power.market_node, now)
        shell.price = expected_price(forecast, real_time)
        hashprice = grid.hashprice_now(events, self.config.hashprice_usd_per_ph_day, now)
        running, waiting, stopping = self._claims(site_id, shell, jobs)
        inputs = SiteInputs(
            shell.power,
            cap,
            shell.price,
            hashprice,
            tuple(running),
            tuple(waiting),
            tuple(stopping),
            shell.targets,
            shell.held,
            shell.states,
            alarm is not None,
            growing=self.controller.scaler.growing_claims(site_id),
        )
        return inputs, cause

    async def dispatch(self, site_id: str) -> None:
        """One dispatch pass for a site, applied. No await between deciding and applying."""
        shell = self.sites.get(site_id)
        if shell is None:
            return
        now = self.clock()
        inputs, cause = self.inputs_for(site_id, shell, now)
        out = dispatch_site(inputs, now, self.policy, cause)
        jobs = self.controller.jobs
        decision = Decision()
        direct: list[Order] = []
        claims = {c.job_id: c for c in inputs.running}
        grace = self.grace_left_s(site_id, inputs, now) if (out.preempt or out.shed) else None  # the same for every run stopped now
        for job_id in (*out.preempt, *out.shed):
            job = jobs[job_id]
            what = "preempted (training)" if job.spec.kind == JobKind.TRAINING else "inference shed"
            decision.extend(runs.preempt(job, f"{what} at {site_id}: {cause}", now, grace))
            shell.stopping[job.run_id] = claims[job_id]
        for job_id, why in out.requeue.items():
            shell.held_starts.pop(job_id, None)
            decision.extend(runs.unplace(jobs[job_id], why, now))
        for job_id, fraction in out.power_fractions.items():
            job = decision.record(dataclasses.replace(jobs[job_id], power_fraction=fraction))
            direct.append(CapRunPower(site_id, job.run_id, fraction, cause))
        self.controller.scaler.apply_dispatch(site_id, out, decision, cause)  # Serve sizes: ScaleRun after the commit
        # The agent holds the cap in force now (a planned cut is for dispatch to prepare for);
        # it holds mining down by itself if cut off while a cut is planned or in force.
        enforced = grid.enforced_cap(shell.power.cap_w, self.events(), site_id, now)
        cap_event = inputs.emergency or inputs.cap_w < shell.power.cap_w or enforced < shell.power.cap_w
        sent = (out.targets_w, round(enforced, 3), cap_event)
        if shell.sent is None or sent[1:] != shell.sent[1:] or any(abs(w - shell.sent[0].get(f, -1e18)) > TARGET_TOLERANCE_W for f, w in out.targets_w.items()):
            for fleet_id, target in out.targets_w.items():
                shell.held[fleet_id] = held_after_target(shell.held.get(fleet_id, target), target)
            shell.targets = dict(out.targets_w)
            shell.sent = sent
            direct.insert(0, SetMiningTargets(site_id, dict(out.targets_w), enforced, cap_event, cause))
        direct.extend(shell.held_starts.pop(job_id) for job_id in out.start)
        shell.states = out.fleet_states
        shell.waiting_reasons = out.waiting_reasons
        shell.committed_w = out.committed_w
        changed = []
        if out.steps:
            stamp = time.strftime("%H:%M:%S", time.gmtime(now))
            lines = [f"{stamp} {s.kind.value} {s.target}: {s.detail} (frees {watts_text(s.freed_w)}; cause: {s.cause})" for s in out.steps]
            for line in lines:
                log.info("site %s: %s", site_id, line)
            record = self._record_in_force(site_id, now)
            if record is not None:
                changed.append(self._append(record, lines))
        self.controller.send_now(direct)
        if decision or changed:
            await self.controller.apply(decision, grid=changed)

    async def run(self) -> None:
        """Dispatch requested sites promptly and every site once per power_interval_s."""
        next_sweep = 0.0
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=self.config.power_interval_s)
            except TimeoutError:
                pass
            self._kick.clear()
            if time.monotonic() >= next_sweep:
                self._dirty.update(self.sites)
                next_sweep = time.monotonic() + self.config.power_interval_s
            dirty, self._dirty = self._dirty, set()
            for site_id in sorted(dirty):
                try:
                    await self.dispatch(site_id)
                except Exception:
                    log.exception("power dispatch for site %s failed", site_id)

    # ------------------------------------------------------------- for placement and operators
    def capacity(self, site_id: str) -> tuple[float, float, float]:
        """(meter power AI may still take with mining at its floor, meter W per GPU, mining value USD/MWh)."""
        shell = self.sites.get(site_id)
        if shell is None:
            return float("inf"), 0.0, 0.0
        now = self.clock()
        inputs, _ = self.inputs_for(site_id, shell, now)
        ledger = SiteLedger(shell.power, inputs.cap_w, (*inputs.running, *inputs.waiting, *inputs.stopping, *inputs.growing), {})
        hashprice = inputs.hashprice_usd_per_ph_day
        running = [f for f in shell.power.fleets if shell.targets.get(f.fleet_id, 0.0) > f.standby_w + TARGET_TOLERANCE_W]
        marginal = max(running, key=lambda f: f.model.joules_per_th, default=None)
        value = max(0.0, marginal.model.revenue_per_mwh(hashprice) - shell.price * shell.power.overhead) if marginal else 0.0
        free = 0.0 if inputs.emergency else ledger.free_for_ai_w()
        return free, ledger.run_power_w(1), value
