"""The power state machine: every power-managed site, the grid events and Serve
scaling, changed only by `PowerState.handle(stimulus, jobs, now) -> Decision`.

In the spirit of dask's `WorkerState.handle_stimulus`: stimuli come in (an agent
registered, a power reading, run reports, a grid event posted, dispatch due, a
scaling pass), the state changes, and out comes one `Decision`: job transitions with
their reasons (preemptions, requeues, power fractions, Serve sizes), grid event
records to persist (how each event was met) and orders (mining targets, GPU power
caps, released starts, scale and stop orders). The scheduler's controller and the
simulator both drive it; the controller commits the decision and only then sends its
orders, the simulator hands them to its plant.

What it keeps per site (`SitePowerState`): the site's power profile (from its agent's
registration), the mining targets sent and what each fleet may still draw (`held`,
from readings, see admission.py), runs ordered to stop and not yet confirmed gone,
start orders waiting for mining to come down (`held_starts`), the cap cuts already
planned for (they stay planned), the last reading. A start on a managed site never
leaves when it is decided: `hold_starts` keeps it until a dispatch pass finds room.

Queries (`capacity`, `figures`, `inputs`, `site_capacity`, `lead_s`) read and never change the state.
A site whose agent gives no interconnect cap is not managed: its starts go out at
once and placement counts GPUs only. Pure: no I/O, no clock; `now` is an argument.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from scheduler.core import grid, runs
from scheduler.core.admission import held_after_reading, held_after_target, sent_after
from scheduler.core.autoscale import ScalePolicy
from scheduler.core.contracts import contract_figures
from scheduler.core.decisions import CapRunPower, Decision, Order, SetMiningTargets, StartRun
from scheduler.core.dispatch import SiteDispatch, SiteInputs, dispatch_site
from scheduler.core.errors import NotFound, shown
from scheduler.core.event_checks import check_reading
from scheduler.core.grid import GridEvent, GridEventKind, GridEventRecord, clock_text, prices_over_before, with_lines
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import Job, JobKind, JobState, power_capped
from scheduler.core.ladder import floor_without_inference_w
from scheduler.core.ledger import AiClaim, SiteLedger, claim_for
from scheduler.core.meter_check import MeterSource, check_meter
from scheduler.core.mining import FleetState, MiningPolicy, expected_price
from scheduler.core.outlook_dispatch import outlook_inputs, recent_price_ids
from scheduler.core.placement import SiteCapacity
from scheduler.core.power import SitePower, watts_text
from scheduler.core.power_stimuli import (
    DispatchDue,
    GridEventEnded,
    GridEventPosted,
    PowerRead,
    PowerReading,
    RunsReported,
    ScalingDue,
    SiteAttached,
    SiteResized,
    Stimulus,
)
from scheduler.core.price_watch import PriceWatch, node_price
from scheduler.core.resume import resume_room_w
from scheduler.core.serve_scaling import ServeScaling
from scheduler.core.site_figures import SiteFigures

TARGET_TOLERANCE_W = 1.0


@dataclass(frozen=True)
class PowerSettings:
    policy: MiningPolicy = MiningPolicy()
    cap_lead_s: float = 30.0  # added to the slowest ramp-down: how early a cut is planned for
    hashprice_usd_per_ph_day: float = 50.0  # until a HASHPRICE event says otherwise
    serve_cooldown_s: float = 30.0
    price_watches: tuple[PriceWatch, ...] = ()  # prices feeds bring: mining curtails when they go stale (price_watch.py)


@dataclass
class SitePowerState:
    power: SitePower
    targets: dict[str, float] = field(default_factory=dict)  # last sent to the agent
    held: dict[str, float] = field(default_factory=dict)  # the most each fleet may draw now
    unconfirmed: dict[str, list[float]] = field(default_factory=dict)  # targets sent since the last confirmed (admission.py)
    states: dict[str, FleetState] = field(default_factory=dict)
    reading: PowerReading | None = None
    stopping: dict[str, AiClaim] = field(default_factory=dict)  # run_id -> claim of a run ordered to stop
    held_starts: dict[str, StartRun] = field(default_factory=dict)  # job_id -> start waiting for power
    released: set[str] = field(default_factory=set)  # run_ids of starts a pass released, on their way out
    sent: tuple | None = None  # (targets, cap, cap_event_active) as last sent
    committed_w: float = 0.0  # meter power the last pass counted (each fleet at max(target, held))
    planned: frozenset[str] = frozenset()  # cap cuts planned for already: they stay planned
    cap_w: float = 0.0  # the cap the last pass planned under
    ladder_steps: dict[str, int] = field(default_factory=dict)  # ladder step kind -> how many were taken
    local_actions: int = 0  # what the agent reported doing by itself (its guard, fleet problems)
    waiting: dict[str, str] = field(default_factory=dict)  # job_id -> why its start or its Serve scale-up waits for power
    meter_disagrees: bool = False  # metered and computed power apart by more than the site's margin
    last_raise_at: float | None = None  # when a pass last let mining rise (the resume pacing: resume.py)

    def __post_init__(self) -> None:
        # Until the agent reports, every fleet may be drawing its full power.
        self.held = {f.fleet_id: f.max_w for f in self.power.fleets}


DispatchPass = Callable[[SiteInputs, float, MiningPolicy, str], SiteDispatch]


def longest_grace(jobs_on_site: Iterable[Job]) -> int:
    """The longest checkpoint grace of the training running at a site (0: none runs)."""
    return max((j.spec.checkpoint_grace_s for j in jobs_on_site if j.state == JobState.RUNNING and j.spec.kind == JobKind.TRAINING), default=0)


class PowerState:
    def __init__(self, settings: PowerSettings = PowerSettings(), records: Iterable[GridEventRecord] = (), dispatch: DispatchPass = dispatch_site):
        self.settings = settings
        self.sites: dict[str, SitePowerState] = {}
        self.grid: dict[str, GridEventRecord] = {r.event.event_id: r for r in records}
        self.serve = ServeScaling(ScalePolicy(settings.serve_cooldown_s))
        self.dirty: set[str] = set()  # sites whose dispatch pass is due
        self.dispatch_site = dispatch  # the pure pass (a test may give a broken one to prove the simulator sees it)
        self._live: list[GridEvent] | None = None
        self._live_since, self._live_until = 0.0, 0.0
        self.give_way: Callable[[str, JobTable], dict[str, int]] | None = None  # job id -> cut rank (contracts: core/cut_order.py)

    def manages(self, site_id: str) -> bool:
        return site_id in self.sites

    def events(self, now: float) -> list[GridEvent]:
        """The events that still matter at `now`: none that ended, and of open-ended prices
        (and hashprices) in force only the newest per market node, as grid.price_now reads
        them. Cached until the next post, end or start."""
        if self._live is None or now >= self._live_until or now < self._live_since:
            self._rebuild_live(now)
        assert self._live is not None
        return self._live

    def _rebuild_live(self, now: float) -> None:
        live: list[GridEvent] = []
        newest: dict[tuple, GridEvent] = {}
        until = grid.FOREVER
        for record in self.grid.values():
            event = record.event
            if event.end <= now:
                continue
            until = min(until, event.end if event.start <= now else event.start)
            if event.kind in (GridEventKind.PRICE, GridEventKind.HASHPRICE) and event.end == grid.FOREVER and event.start <= now:
                key = (event.kind, event.market_node, event.forecast)
                if key not in newest or event.start >= newest[key].start:
                    newest[key] = event
            else:
                live.append(event)
        self._live, self._live_since, self._live_until = [*live, *newest.values()], now, until

    def forget_ended(self, now: float) -> None:
        """Drop the records of events over and done with (a simulation keeps memory flat;
        the scheduler keeps its records for ListGridEvents, and they are in its store)."""
        planned = {event_id for st in self.sites.values() for event_id in st.planned}
        live = {e.event_id for e in self.events(now)} | recent_price_ids((r.event for r in self.grid.values()), now)  # the outlook reads the last hour
        self.grid = {k: r for k, r in self.grid.items() if k in live or k in planned}

    def expired_prices(self, ended_before: float) -> list[str]:
        """Prices over (ended or superseded) before `ended_before`: retention drops them."""
        return prices_over_before((r.event for r in self.grid.values()), ended_before)

    def forget(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self.grid.pop(event_id, None)
        self._live = None

    # ------------------------------------------------------------- the step
    def handle(self, stimulus: Stimulus, jobs: JobTable, now: float) -> Decision:
        match stimulus:
            case SiteAttached(site_id, power):
                return self._attach(site_id, power)
            case SiteResized(site_id, gpus):
                st = self.sites.get(site_id)
                if st is not None and st.power.gpus != gpus:
                    st.power = dataclasses.replace(st.power, gpus=gpus)
                    self.dirty.add(site_id)
                return Decision()
            case PowerRead(site_id, reading):
                return self._on_reading(site_id, reading, jobs, now)
            case RunsReported(site_id, reports):
                st = self.sites.get(site_id)
                for report in reports:
                    if self.serve.observe(site_id, report):
                        self.dirty.add(site_id)
                    if report.state not in runs.RUN_ACTIVE and st is not None and st.stopping.pop(report.run_id, None) is not None:
                        self.dirty.add(site_id)
                return Decision()
            case GridEventPosted(event, known_sites, by):
                return self._post(event, known_sites, by, jobs, now)
            case GridEventEnded(event_id, end, reason):
                return self._end(event_id, end, reason, jobs, now)
            case DispatchDue(sweep):
                due, self.dirty = (set(self.sites) if sweep else self.dirty & set(self.sites)), set()
                decision = Decision()
                for site_id in sorted(due):
                    decision.extend(self._dispatch(site_id, jobs, now))
                return decision
            case ScalingDue(site_gpus):
                used = jobs.gpus_in_use()
                free = {site_id: gpus - used.get(site_id, (0, 0))[0] for site_id, gpus in site_gpus.items()}
                decision, to_dispatch = self.serve.step(jobs.served_running(), free, self.manages, now)
                self.dirty |= to_dispatch
                return decision
        raise TypeError(f"not a power stimulus: {stimulus!r}")

    def hold_starts(self, orders: Iterable[Order]) -> list[Order]:
        """The orders that may leave now: a start on a managed site waits for power
        (a dispatch pass releases it once it fits); everything else leaves."""
        out = []
        for order in orders:
            st = self.sites.get(order.site_id) if isinstance(order, StartRun) else None
            if st is None or order.run_id in st.released:
                if st is not None:
                    st.released.discard(order.run_id)
                out.append(order)
            else:
                st.held_starts[order.job_id] = order
                self.dirty.add(order.site_id)
        return out

    # ------------------------------------------------------------- sites and readings
    def _attach(self, site_id: str, power: SitePower | None) -> Decision:
        old = self.sites.pop(site_id, None)
        if power is not None:
            st = SitePowerState(power)
            if old is not None:  # runs still stopping and starts waiting survive a reconnect
                st.stopping, st.held_starts = old.stopping, old.held_starts
            self.sites[site_id] = st
            self.dirty.add(site_id)
        return Decision()

    def _on_reading(self, site_id: str, reading: PowerReading, jobs: JobTable, now: float) -> Decision:
        decision = Decision()
        st = self.sites.get(site_id)
        if st is None:
            return decision
        st.reading = reading
        margin = st.power.meter_disagree_margin
        st.meter_disagrees, notes = check_meter(site_id, st.meter_disagrees, reading.meter_source, reading.meter_w, reading.computed_w, margin)
        decision.notes.extend(notes)
        for fleet_id, (measured, acked) in reading.fleets.items():
            if fleet_id in st.targets:
                sent = st.unconfirmed.get(fleet_id, [st.targets[fleet_id]])
                st.held[fleet_id], st.unconfirmed[fleet_id] = held_after_reading(st.held.get(fleet_id, measured), sent, measured, acked)
        for run_id in [r for r in st.stopping if r not in reading.active_runs]:
            del st.stopping[run_id]
        check_reading(self.grid, self.events(now), site_id, st.power, reading, self.lead_s(site_id), now, decision)
        if reading.local_actions:
            st.local_actions += len(reading.local_actions)
            record = self._record_in_force(site_id, jobs, now)
            lines = [f"{clock_text(at)} agent {site_id} by itself: {what}" for at, what in reading.local_actions]
            ids = {"site_id": site_id, **({"grid_event_id": record.event.event_id} if record is not None else {})}
            decision.notes.extend(("warning", line, ids) for line in lines)
            if record is not None:
                self._append(record, lines, decision)
        self.dirty.add(site_id)
        return decision

    def _append(self, record: GridEventRecord, lines: list[str], decision: Decision) -> GridEventRecord:
        updated = self.grid[record.event.event_id] = with_lines(record, lines)
        decision.grid.append(updated)
        return updated

    # ------------------------------------------------------------- grid events
    def _post(self, event: GridEvent, known_sites: frozenset[str], by: str, jobs: JobTable, now: float) -> Decision:
        """Record an event (idempotent by id; a higher modification replaces it) and act on it at once."""
        existing = self.grid.get(event.event_id)
        if existing is None:
            grid.validate_event(event, known_sites)
            record = GridEventRecord(event, now)
            line = f"grid event {event.event_id}: {event.describe()}"
        else:
            modified = grid.modify(existing, event, known_sites, now)
            if modified is None:
                return Decision()
            who = f" by {by}" if by else ""
            record = with_lines(modified, [f"{clock_text(now)} modification {event.modification}{who}: {event.describe()}"])
            line = f"grid event {event.event_id} modified (modification {event.modification}{who}): {event.describe()}"
            for st in self.sites.values():  # re-planned from its new content, not held to the old
                st.planned = st.planned - {event.event_id}
        return self._changed(record, line, jobs, now)

    def _end(self, event_id: str, end: float | None, reason: str, jobs: JobTable, now: float) -> Decision:
        """End an event early (a cut ended lets mining back by the usual rules) and act at once."""
        existing = self.grid.get(event_id)
        if existing is None:
            raise NotFound(f"grid event {shown(event_id)} is not known")
        record = grid.end_early(existing, end, reason, now)
        line = f"ended early at {clock_text(record.event.end)}" + (f": {reason}" if reason else "")
        record = with_lines(record, [f"{clock_text(now)} {line}"])
        return self._changed(record, f"grid event {event_id} {line}", jobs, now)

    def _changed(self, record: GridEventRecord, line: str, jobs: JobTable, now: float) -> Decision:
        """Keep a new or changed record, log it and dispatch the sites it touches at once. A cap
        below what the site can draw at all (idle GPUs, paused miners) is flagged, not refused:
        the grid's order stands, and the record says it cannot be met."""
        event = record.event
        warnings = []
        if event.kind == GridEventKind.CAP_LIMIT and event.site_id in self.sites:
            record = dataclasses.replace(record, floor_w=self.sites[event.site_id].power.physical_floor_w)
            if record.below_floor:
                warnings.append(f"cap {watts_text(event.cap_w)} is below {event.site_id}'s physical floor {watts_text(record.floor_w)} (idle GPUs, paused miners): it cannot be met")
                record = with_lines(record, [f"{clock_text(now)} {warnings[-1]}"])
        self.grid[event.event_id] = record
        self._live = None
        ids = {"grid_event_id": event.event_id, **({"site_id": event.site_id} if event.site_id else {})}
        decision = Decision(grid=[record], notes=[("info", line, ids), *(("warning", f"grid event {event.event_id}: {w}", ids) for w in warnings)])
        affected = sorted(self.sites) if event.kind in (GridEventKind.PRICE, GridEventKind.HASHPRICE) else [event.site_id]
        for site_id in affected:  # curtailment never waits for a scheduling cycle
            if site_id in self.sites:
                self.dirty.discard(site_id)
                decision.extend(self._dispatch(site_id, jobs, now))
        return decision

    def met(self, record: GridEventRecord) -> bool:
        """Cap limits and emergencies: read while in force and never short; prices: once applied."""
        if record.event.kind in (GridEventKind.PRICE, GridEventKind.HASHPRICE):
            return True
        return record.met

    def _record_in_force(self, site_id: str, jobs: JobTable, now: float) -> GridEventRecord | None:
        source = grid.emergency(self.events(now), site_id, now)
        if source is None and site_id in self.sites:
            source = self._planning_cap(site_id, self.sites[site_id], longest_grace(jobs.on_site(site_id)), now)[1]
        return self.grid.get(source.event_id) if source is not None else None

    # ------------------------------------------------------------- planning
    def lead_s(self, site_id: str) -> float:
        """How long before a cap cut the site must start: its slowest ramp-down plus cap_lead_s."""
        fleets = self.sites[site_id].power.fleets
        return max((f.model.ramp_down_s for f in fleets), default=0.0) + self.settings.cap_lead_s

    def _planning_cap(self, site_id: str, st: SitePowerState, grace_s: float, now: float) -> tuple[float, GridEvent | None, frozenset[str]]:
        """grid.planning_cap with the site's planning lead (`lead_s` plus `grace_s`, the longest
        grace of its running training); a cut once planned for stays planned
        (the lead shrinks when preempted training leaves: mining must not bounce back up).
        Also returns the cuts planned for after this pass (dispatch keeps them)."""
        cap, source = grid.planning_cap(st.power.cap_w, self.events(now), site_id, now, self.lead_s(site_id) + grace_s)
        planned = set(st.planned)
        if source is not None:
            planned.add(source.event_id)
        for event_id in list(planned):
            record = self.grid.get(event_id)
            if record is None or now >= record.event.end:
                planned.discard(event_id)
            elif record.event.cap_w < cap:
                cap, source = record.event.cap_w, record.event
        return cap, source, frozenset(planned)

    def _grace_left_s(self, site_id: str, st: SitePowerState, inputs: SiteInputs, source: GridEvent | None, now: float) -> float | None:
        """The most checkpoint grace a run preempted now may get: none in an emergency or
        under a cap already in force, else until the planned cut's deadline less the site's
        lead (the run's power must be gone as early as mining's would be)."""
        if inputs.emergency:
            return 0.0
        if grid.enforced_cap(st.power.cap_w, self.events(now), site_id, now) <= inputs.cap_w + TARGET_TOLERANCE_W:
            return 0.0  # the cap we plan for is already the one in force
        if source is None:
            return None
        return max(0.0, source.deadline - self.lead_s(site_id) - now)

    def _claims(self, site_id: str, st: SitePowerState, jobs: JobTable) -> tuple[list[AiClaim], list[AiClaim], list[AiClaim], int]:
        """The site's running, waiting and stopping claims, and the longest grace of its running training."""
        running, waiting, stopping = [], [], list(st.stopping.values())
        stopping += self.serve.stopping_claims(site_id, jobs)  # replicas a Serve run is giving up
        grace = 0
        for job in jobs.on_site(site_id):
            claim = claim_for(job)
            held = st.held_starts.get(job.job_id)
            if job.state == JobState.RUNNING and job.spec.kind == JobKind.TRAINING:
                grace = max(grace, job.spec.checkpoint_grace_s)
            if job.state in (JobState.CANCELLING, JobState.PREEMPTED):
                if job.run_id not in st.stopping:  # a preempted run checkpointing still draws
                    stopping.append(claim)
            elif held is not None and held.run_id == job.run_id and job.state == JobState.SCHEDULED:
                waiting.append(claim)
            else:
                running.append(claim)
        waiting.sort(key=lambda c: (-c.priority, c.seq))
        return running, waiting, stopping, grace

    def inputs(self, site_id: str, st: SitePowerState, jobs: JobTable, now: float) -> tuple[SiteInputs, str, GridEvent | None, frozenset[str]]:
        """What dispatch needs, read from the state (nothing changes here)."""
        events = self.events(now)
        running, waiting, stopping, grace = self._claims(site_id, st, jobs)
        cap, source, planned = self._planning_cap(site_id, st, grace, now)
        alarm = grid.emergency(events, site_id, now)
        if self.give_way is not None and (alarm or cap < st.power.cap_w) and (ranks := self.give_way(site_id, jobs)):  # a cut: who goes first
            running = [dataclasses.replace(c, give_way=ranks[c.job_id]) if c.job_id in ranks else c for c in running]
        cause = (alarm or source).describe() if (alarm or source) else f"site cap {watts_text(cap)}"
        price = node_price(events, self.settings.price_watches, st.power.market_node, now)
        hashprice = grid.hashprice_now(events, self.settings.hashprice_usd_per_ph_day, now)
        inputs = SiteInputs(
            st.power,
            cap,
            expected_price(price.forecast, price.real_time),
            hashprice,
            tuple(running),
            tuple(waiting),
            tuple(stopping),
            st.targets,
            st.held,
            st.states,
            alarm is not None,
            growing=self.serve.growing_claims(site_id, jobs),
            price_unknown=price.unknown,
            resume_room_w=resume_room_w(self.settings.policy, st.last_raise_at, now),
            cut_in_force_w=cut if (cut := grid.enforced_cap(st.power.cap_w, events, site_id, now)) < st.power.cap_w else math.inf,
            outlook=outlook_inputs(price, events, (r.event for r in self.grid.values()), st.power.market_node, now, self.settings.policy.timezone) if self.settings.policy.policy == "outlook" else None,
        )
        return inputs, cause, source, planned

    # ------------------------------------------------------------- dispatch
    def _dispatch(self, site_id: str, jobs: JobTable, now: float) -> Decision:
        """One dispatch pass for a site: the state moves on, the decision says the rest."""
        st = self.sites[site_id]
        inputs, cause, source, planned = self.inputs(site_id, st, jobs, now)
        cause_kind = "grid_emergency" if inputs.emergency else "grid_cap_limit" if source is not None else "site_cap"
        st.planned, st.cap_w = planned, inputs.cap_w
        live = {c.job_id for c in inputs.waiting}
        st.held_starts = {j: o for j, o in st.held_starts.items() if j in live}
        out = self.dispatch_site(inputs, now, self.settings.policy, cause)
        decision = Decision()
        claims = {c.job_id: c for c in inputs.running}
        grace = self._grace_left_s(site_id, st, inputs, source, now) if (out.preempt or out.shed) else None  # the same for every run stopped now
        for job_id in (*out.preempt, *out.shed):
            job = jobs[job_id]
            what = "preempted (training)" if job.spec.kind == JobKind.TRAINING else "inference shed"
            decision.extend(runs.preempt(job, f"{what} at {site_id}: {cause}", now, grace))
            decision.preemptions.append(cause_kind)
            st.stopping[job.run_id] = claims[job_id]
        for job_id, why in out.requeue.items():
            st.held_starts.pop(job_id, None)
            decision.extend(runs.unplace(jobs[job_id], why, now))
        caps = []
        for job_id, fraction in out.power_fractions.items():
            job = decision.record(*power_capped(jobs[job_id], fraction, cause, now))  # logged: accounting integrates energy
            caps.append(CapRunPower(site_id, job.run_id, fraction, cause))
        self.serve.apply_dispatch(out, decision, cause, jobs, now)  # Serve sizes and their ScaleRun orders
        # The agent holds the cap in force now (a planned cut is for dispatch to prepare for);
        # it holds mining down by itself if cut off while a cut is planned or in force.
        enforced = grid.enforced_cap(st.power.cap_w, self.events(now), site_id, now)
        cap_event = inputs.emergency or inputs.cap_w < st.power.cap_w or enforced < st.power.cap_w
        sent = (out.targets_w, round(enforced, 3), cap_event)
        targets: list[SetMiningTargets] = []
        if st.sent is None or sent[1:] != st.sent[1:] or any(abs(w - st.sent[0].get(f, -1e18)) > TARGET_TOLERANCE_W for f, w in out.targets_w.items()):
            for fleet_id, target in out.targets_w.items():
                st.held[fleet_id] = held_after_target(st.held.get(fleet_id, target), target)
                st.unconfirmed[fleet_id] = sent_after(st.unconfirmed.get(fleet_id, []), target)
            st.targets = dict(out.targets_w)
            st.sent = sent
            targets.append(SetMiningTargets(site_id, dict(out.targets_w), enforced, cap_event, cause))
        # Mining targets leave before the commit (they change no job); then caps, the rest
        # (stops, scales) and released starts, once the decision is durable.
        decision.urgent.extend(targets)
        decision.orders[:0] = caps
        for job_id in out.start:
            start = st.held_starts.pop(job_id)
            st.released.add(start.run_id)
            decision.orders.append(start)
        st.states = out.fleet_states
        st.committed_w = out.committed_w
        if out.raised_w > 0:
            st.last_raise_at = now
        st.waiting = {**out.waiting_reasons, **out.grow_reasons}
        for step in out.steps:
            st.ladder_steps[step.kind.value] = st.ladder_steps.get(step.kind.value, 0) + 1
        if out.steps:
            stamp = clock_text(now)
            lines = [f"{stamp} {s.kind.value} {s.target}: {s.detail} (frees {watts_text(s.freed_w)}; cause: {s.cause})" for s in out.steps]
            record = self._record_in_force(site_id, jobs, now)
            ids = {"site_id": site_id, **({"grid_event_id": record.event.event_id} if record is not None else {})}
            decision.notes.append(("info", f"site {site_id}, {len(lines)} ladder step(s):\n  " + "\n  ".join(lines), ids))  # one log record a pass
            if record is not None:
                self._append(record, lines, decision)
        if (targets or caps or out.preempt or out.shed) and self.grid:
            self._responded(site_id, jobs, now, decision)
        return decision

    def _responded(self, site_id: str, jobs: JobTable, now: float, decision: Decision) -> None:
        """Stamp the event this pass answered (the first orders sent for it)."""
        record = self._record_in_force(site_id, jobs, now)
        if record is not None and record.responded_at is None and record.met_at is None:
            updated = dataclasses.replace(record, responded_at=now)
            self.grid[record.event.event_id] = updated
            decision.grid.append(updated)

    # ------------------------------------------------------------- queries (read only)
    def waiting_reason(self, site_id: str, job_id: str) -> str:
        """Why a job placed on the site has not started, or a Serve service does not grow,
        as the last dispatch pass found ("" if it did not hold it back)."""
        st = self.sites.get(site_id)
        return st.waiting.get(job_id, "") if st is not None else ""

    def capacity(self, site_id: str, jobs: JobTable, now: float) -> tuple[float, float, float]:
        """(meter power AI may still take with mining at its floor, meter W per GPU, mining value USD/MWh)."""
        st = self.sites.get(site_id)
        if st is None:
            return float("inf"), 0.0, 0.0
        inputs = self.inputs(site_id, st, jobs, now)[0]
        ledger = SiteLedger(st.power, inputs.cap_w, (*inputs.running, *inputs.waiting, *inputs.stopping, *inputs.growing), {})
        running = [f for f in st.power.fleets if st.targets.get(f.fleet_id, 0.0) > f.standby_w + TARGET_TOLERANCE_W]
        marginal = max(running, key=lambda f: f.model.joules_per_th, default=None)
        price = inputs.price_usd_per_mwh
        value = max(0.0, marginal.model.revenue_per_mwh(inputs.hashprice_usd_per_ph_day) - price * st.power.overhead) if marginal else 0.0
        free = 0.0 if inputs.emergency else ledger.free_for_ai_w()
        return free, ledger.run_power_w(1), value

    def site_capacity(
        self, site_id: str, region: str, gpus: tuple[int, int], unavailable_because: str, jobs: JobTable, now: float, smallest_need: int = 0
    ) -> SiteCapacity:
        """What placement sees of a site: GPUs (total, used), power free for AI and mining's value;
        `unavailable_because` empty: the site accepts work. A site that takes no work, or has
        fewer free GPUs than `smallest_need` (the fewest a pending job needs), can take no
        pending job: placement never reads its power figures, so they are not worked out (0)."""
        if unavailable_because or gpus[0] - gpus[1] < smallest_need:
            power_free_w, power_per_gpu_w, mining_value = 0.0, 0.0, 0.0
        else:
            power_free_w, power_per_gpu_w, mining_value = self.capacity(site_id, jobs, now)
        return SiteCapacity(
            site_id=site_id,
            region=region,
            gpus_total=gpus[0],
            gpus_used=gpus[1],
            accepts_work=not unavailable_because,
            unavailable_because=unavailable_because,
            power_free_w=power_free_w,
            power_per_gpu_w=power_per_gpu_w,
            mining_value_usd_per_mwh=mining_value,
            **(contract_figures(self.sites[site_id].power) if site_id in self.sites else {}),
        )

    def floor_without_inference_w(self, site_id: str, jobs: JobTable, now: float) -> float | None:
        """The lowest meter power the site can be brought to without shedding or scaling down
        inference, from its running work and what its fleets may draw (None: not managed)."""
        st = self.sites.get(site_id)
        if st is None:
            return None
        inputs = self.inputs(site_id, st, jobs, now)[0]
        return floor_without_inference_w(SiteLedger(st.power, inputs.cap_w, (*inputs.running, *inputs.stopping), dict(st.held)))

    def figures(self, site_id: str, jobs: JobTable, now: float) -> SiteFigures | None:
        """A site's power as operators see it (GetSite, ListSites, the metrics), or None when
        the site does not manage power. Powers are at the meter (IT x overhead)."""
        st = self.sites.get(site_id)
        if st is None:
            return None
        inputs = self.inputs(site_id, st, jobs, now)[0]
        reading, overhead = st.reading, st.power.overhead
        fleets = tuple((f.fleet_id, reading.fleets.get(f.fleet_id, (0.0, 0.0))[0] if reading else 0.0, st.targets.get(f.fleet_id, 0.0)) for f in st.power.fleets)
        ai_it_w, mining_it_w = (reading.gpu_w if reading else 0.0), sum(measured for _, measured, _ in fleets)
        return SiteFigures(
            cap_w=grid.enforced_cap(st.power.cap_w, self.events(now), site_id, now),
            interconnect_cap_w=st.power.cap_w,
            planned_cap_w=st.cap_w or st.power.cap_w,
            committed_w=st.committed_w,
            measured_w=reading.meter_w if reading else 0.0,
            ai_w=ai_it_w * overhead,
            mining_w=mining_it_w * overhead,
            mining_target_w=sum(st.targets.values()) * overhead,
            price_usd_per_mwh=inputs.price_usd_per_mwh,
            emergency=inputs.emergency,
            fleets=fleets,
            ladder_steps=dict(st.ladder_steps),
            local_actions=st.local_actions,
            ai_it_w=ai_it_w,
            mining_it_w=mining_it_w,
            computed_w=(reading.computed_w or reading.meter_w) if reading else 0.0,
            meter_source=reading.meter_source if reading else MeterSource.COMPUTED,
            meter_disagrees=st.meter_disagrees,
        )
