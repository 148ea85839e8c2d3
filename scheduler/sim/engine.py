"""The simulator's tick loop: the scheduler's side of every site, driven by a fake clock.

Each tick (`tick_s`, default 60 s), in this order:
1. the agents' messages that have arrived are taken in: fleet readings lower `held`
   (admission.held_after_reading), run ends free their GPUs, confirmed stops requeue
   the job with the work it has left (it resumes from its checkpoint);
2. jobs that have arrived join the queue;
3. placement.place assigns queued jobs to sites (SiteCapacity with its power fields);
4. per site, dispatch.dispatch_site gets the planning cap (grid.planning_cap, lead =
   slowest fleet ramp-down + the order delay + one tick), the emergency flag, the
   expected price (mining.expected_price of the day-ahead price and the last settled
   real-time price), the running/waiting/stopping claims and the fleets' targets,
   held power and states; its orders go to the site's agent (physics.Plant);
5. each site's plant runs until the next tick (power-capped training at the relative
   speed of `SimConfig.speed`, so it finishes later: SimJob.slowdown_s).
Job states move through core.jobs.transition. Nothing here reads the wall clock.

Records stream out: each tick's rows go to the `rows` sink as the tick completes (kept
in SiteView.rows only when no sink is given: tests and small runs), and a finished job
is folded into `finished` (tally.JobTally: the counts the report needs) and dropped, so
memory does not grow with the days simulated. `on_finished` sees each job before it is
dropped. Stops carry the checkpoint grace the core gives (physics: the run keeps its
power until it has checkpointed or its grace is over; the work it could not save is
lost and counted back into its remaining work). Each reading also brings the demand
(requests/s) of every Serve inference service; the latest is kept per site and read as
ServeLoads (what the real agent sends in RunReport.serve) through `serve_loads`, for the
serve scaling to come (core.runs.observe puts one on its Job; not done per reading
here: a Job copy per service per tick was most of the run time).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from scheduler.core.admission import held_after_reading, held_after_target
from scheduler.core.decisions import StopRun
from scheduler.core.dispatch import SiteDispatch, SiteInputs, dispatch_site
from scheduler.core.gpu_speed import ZEUS_SPEED_CURVE, SpeedCurve
from scheduler.core.grid import GridEvent, GridEventKind, emergency, enforced_cap, planning_cap
from scheduler.core.jobs import Job, JobKind, JobState, new_job, transition
from scheduler.core.ledger import AiClaim, SiteLedger
from scheduler.core.mining import FleetState, MiningPolicy, expected_price
from scheduler.core.placement import Placement, SiteCapacity, place
from scheduler.core.power_state import TARGET_TOLERANCE_W
from scheduler.core.runs import ServeLoad, preempt
from scheduler.sim.physics import Environment, Plant, RunPhysics, TickTotals
from scheduler.sim.scenario import Arrival, SiteSpec
from scheduler.sim.tally import JobTally
from scheduler.sim.traces import DAY_AHEAD_COLUMN, REAL_TIME_COLUMN, Hashprice, PriceTrace

Dispatch = Callable[[SiteInputs, float, MiningPolicy], SiteDispatch]


class Row(NamedTuple):
    """One tick of one site, as timeseries.csv has it (powers: averages over the tick)."""

    time: float
    site: str
    cap_w: float  # enforced at the tick's start
    planning_cap_w: float  # what dispatch planned under
    price: float  # real-time USD/MWh at the tick's start
    ai_w: float  # IT power
    mining_w: float  # IT power
    overhead_w: float  # cooling and losses
    committed_w: float  # what dispatch committed: AI claims (running, starting, stopping) + fleets at their new targets
    unconfirmed_w: float  # more it still counted for fleets not yet confirmed down (max(target, held) - target)
    measured_w: float  # at the meter: ai + mining + overhead
    peak_w: float  # highest meter power within the tick
    hashprice: float
    violation: int  # 1: the meter exceeded the enforced cap at some moment of the tick
    tick_s: float


@dataclass(frozen=True)
class SimConfig:
    tick_s: float = 60.0
    order_delay_s: float = 1.0  # scheduler -> agent
    reading_delay_s: float | None = None  # agent -> scheduler; None: one tick
    lead_s: float | None = None  # None: slowest ramp-down + order delay + one tick
    inference_slo_s: float = 300.0  # inference must get its GPUs within this of arriving (or of a shed)
    training_deadline_factor: float = 2.0  # training must finish by arrival + factor x its duration
    policy: MiningPolicy = MiningPolicy(min_on_s=900.0, min_off_s=900.0)  # one ERCOT interval of dwell
    speed: SpeedCurve = ZEUS_SPEED_CURVE  # training speed at a GPU power fraction
    speed_source: str = "built-in (scheduler/core/gpu_speed.py)"


@dataclass(frozen=True)
class Scenario:
    sites: tuple[SiteSpec, ...]
    prices: PriceTrace
    forecast: PriceTrace | None
    hashprice: Hashprice
    arrivals: tuple[Arrival, ...]
    events: tuple[GridEvent, ...]
    start: float
    end: float


@dataclass
class SimJob:
    arrival: Arrival
    job: Job
    arrived_at: float
    remaining_s: float  # work left at full power
    waiting_since: float  # when it last (re)joined the queue
    first_start: float | None = None
    finished_at: float | None = None
    preemptions: int = 0
    slo_missed: bool = False
    slowdown_s: float = 0.0  # how much longer it ran because its GPUs were power-capped
    work_gpu_s: float = 0.0  # full-power GPU-seconds done (less what stops lost)
    lost_s: float = 0.0  # full-power seconds of work its stops lost (redone after)


@dataclass
class SiteView:
    """A site as the scheduler sees it, plus its plant and what the run recorded."""

    spec: SiteSpec
    plant: Plant
    lead_s: float
    price_column: str
    forecast_column: str | None
    events: tuple[GridEvent, ...]
    cap_changes: tuple[float, ...]
    running: dict[str, AiClaim] = field(default_factory=dict)
    waiting: dict[str, AiClaim] = field(default_factory=dict)
    stopping: dict[str, AiClaim] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    held: dict[str, float] = field(default_factory=dict)
    states: dict[str, FleetState] = field(default_factory=dict)
    totals: TickTotals = field(default_factory=TickTotals)
    violation_ticks: int = 0
    steps: dict[str, int] = field(default_factory=dict)  # ladder step kind -> count
    rows: list[Row] = field(default_factory=list)
    serve_readings: tuple = ()  # the latest ((job, requests/s, replicas), ...) of its Serve services

    def claims(self) -> tuple[AiClaim, ...]:
        return (*self.running.values(), *self.waiting.values(), *self.stopping.values())


def lead_time_s(spec: SiteSpec, config: SimConfig) -> float:
    """How early a cap cut is planned for: the slowest fleet's ramp-down, plus the order's
    way to the agent, plus one tick (the next dispatch may come up to a tick late)."""
    if config.lead_s is not None:
        return config.lead_s
    slowest = max((f.model.ramp_down_s for f in spec.power.fleets), default=0.0)
    return slowest + config.order_delay_s + config.tick_s


class Simulator:
    """Replays a Scenario; `dispatch` can be swapped (tests feed it a broken one)."""

    def __init__(
        self,
        scenario: Scenario,
        config: SimConfig = SimConfig(),
        dispatch: Dispatch = dispatch_site,
        rows: Callable[[Row], None] | None = None,
        on_finished: Callable[[SimJob], None] | None = None,
    ):
        self.scenario, self.config, self.dispatch = scenario, config, dispatch
        self.row_sink, self.on_finished = rows, on_finished
        self.finished = JobTally()  # jobs done and dropped
        reading_delay = config.tick_s if config.reading_delay_s is None else config.reading_delay_s
        self.sites: dict[str, SiteView] = {}
        for spec in scenario.sites:
            events = tuple(e for e in scenario.events if e.site_id == spec.site_id)
            changes = sorted({t for e in events if e.kind == GridEventKind.CAP_LIMIT for t in (e.deadline, e.end)})
            fc = scenario.forecast.node_column(spec.market_node, DAY_AHEAD_COLUMN) if scenario.forecast else None
            view = SiteView(
                spec,
                Plant(spec.power, config.order_delay_s, reading_delay, config.speed),
                lead_time_s(spec, config),
                scenario.prices.node_column(spec.market_node, REAL_TIME_COLUMN),
                fc,
                events,
                tuple(changes),
            )
            view.targets = dict(view.plant.applied)
            view.held = dict(view.plant.applied)
            self.sites[spec.site_id] = view
        self.jobs: dict[str, SimJob] = {}
        self.pending: dict[str, SimJob] = {}
        self.admitted = 0
        self.tick_count = 0
        self._tick_rows: list[Row] = []

    # ------------------------------------------------------------------ the loop
    def run(self, progress: Callable[[int, int], None] | None = None) -> Simulator:
        sc, tick = self.scenario, self.config.tick_s
        total = max(1, math.ceil((sc.end - sc.start) / tick - 1e-9))  # the last tick may be shorter
        for k in range(total):
            t = sc.start + k * tick
            self.step(t, min(t + tick, sc.end))
            if progress:
                progress(k + 1, total)
        return self

    def step(self, t: float, t_next: float) -> None:
        for view in self.sites.values():
            self._take_messages(view, t)
        self._admit_arrivals(t)
        self._place(t)
        for view in self.sites.values():
            committed = self._dispatch(view, t)
            totals = view.plant.advance(t, t_next, self._environment(view))
            self._record(view, t, t_next - t, totals, committed)
        self._emit_rows()
        self.tick_count += 1

    # ------------------------------------------------------------------ inputs
    def _environment(self, view: SiteView) -> Environment:
        sc, power = self.scenario, view.spec.power

        def next_change(x: float) -> float:
            cap_next = next((c for c in view.cap_changes if c > x), float("inf"))
            return min(cap_next, sc.prices.next_change(x), sc.hashprice.next_change(x))

        return Environment(
            cap_w=lambda x: enforced_cap(power.cap_w, view.events, power.site_id, x),
            price=lambda x: sc.prices.at(view.price_column, x),
            hashprice=sc.hashprice.at,
            next_change=next_change,
        )

    def _expected_price(self, view: SiteView, t: float) -> float:
        sc = self.scenario
        day_ahead = sc.forecast.at(view.forecast_column, t) if sc.forecast and view.forecast_column else None
        return expected_price(day_ahead, sc.prices.settled_before(view.price_column, t))

    # ------------------------------------------------------------------ messages
    def _take_messages(self, view: SiteView, t: float) -> None:
        for message in view.plant.receive(t):
            match message:
                case ("reading", fleet_id, measured, acked):
                    view.held[fleet_id] = held_after_reading(view.held[fleet_id], view.targets[fleet_id], measured, acked)
                case ("ended", job_id, at):
                    if view.running.pop(job_id, None) is None:
                        view.stopping.pop(job_id, None)  # a stop raced with the run's end: the end won
                    sj = self.jobs.pop(job_id)
                    sj.job, _ = transition(sj.job, JobState.SUCCEEDED, "run finished", t)
                    sj.remaining_s, sj.finished_at = 0.0, at
                    self.finished.add(sj, self.scenario.end, self.config)
                    if self.on_finished:
                        self.on_finished(sj)
                case ("serve", loads):
                    view.serve_readings = loads  # read through serve_loads(): no per-service work per tick
                case ("stopped", job_id, remaining_s, lost_s):
                    view.stopping.pop(job_id)
                    sj = self.jobs[job_id]
                    sj.lost_s += lost_s
                    sj.job, _ = transition(sj.job, JobState.PREEMPTED, "stopped to free power", t)
                    sj.job, _ = transition(sj.job, JobState.PENDING, "requeued; resumes from its checkpoint", t, site_id="", preemptions=sj.job.preemptions + 1)
                    sj.remaining_s, sj.waiting_since = remaining_s, t
                    sj.preemptions += 1
                    self.pending[job_id] = sj

    def _admit_arrivals(self, t: float) -> None:
        arrivals = self.scenario.arrivals
        while self.admitted < len(arrivals) and self.scenario.start + arrivals[self.admitted].time_s <= t:
            a = arrivals[self.admitted]
            self.admitted += 1
            seq = self.admitted
            job_id = a.job_id or f"job-{seq:06d}"
            if job_id in self.jobs:
                job_id = f"{job_id}-{seq}"
            job, _ = new_job(job_id, "sim", job_id, a.job_spec(), seq, t)
            at = self.scenario.start + a.time_s
            sj = SimJob(a, job, at, a.duration_s, at)
            self.jobs[job_id] = self.pending[job_id] = sj

    # ------------------------------------------------------------------ placement
    def _capacity(self, view: SiteView, t: float) -> SiteCapacity:
        site = view.spec.power
        cap, _ = planning_cap(site.cap_w, view.events, site.site_id, t, view.lead_s)
        claims = view.claims()
        in_emergency = emergency(view.events, site.site_id, t) is not None
        return SiteCapacity(
            site.site_id,
            view.spec.region,
            site.gpus,
            sum(c.gpus for c in claims),
            accepts_work=not in_emergency,
            unavailable_because="grid emergency" if in_emergency else "",
            power_free_w=SiteLedger(site, cap, claims, {}).free_for_ai_w(),
            power_per_gpu_w=(site.gpu_load_w - site.gpu_idle_w) * site.overhead,
            mining_value_usd_per_mwh=self._mining_value(view, t),
        )

    def _mining_value(self, view: SiteView, t: float) -> float:
        """Profit per MWh of the least efficient fleet that is hashing (0: none is)."""
        site = view.spec.power
        price, hashprice = self._expected_price(view, t), self.scenario.hashprice.at(t)
        for fleet in sorted(site.fleets, key=lambda f: (-f.model.joules_per_th, f.fleet_id)):
            if view.targets.get(fleet.fleet_id, fleet.standby_w) > fleet.standby_w + 1e-6:
                return max(0.0, fleet.model.revenue_per_mwh(hashprice) - price * site.overhead)
        return 0.0

    def _place(self, t: float) -> None:
        """Place queued jobs. A site under a grid emergency takes inference (dispatch keeps
        and starts inference there) but no training: with one in force, inference is
        placed first, then training on what is left."""
        if not self.pending:
            return
        capacities = [self._capacity(v, t) for v in self.sites.values()]
        if all(c.accepts_work for c in capacities):
            self._assign(place((sj.job for sj in self.pending.values()), capacities), t)
            return
        open_all = [dataclasses.replace(c, accepts_work=True, unavailable_because="") for c in capacities]
        inference = place((sj.job for sj in self.pending.values() if sj.arrival.kind == JobKind.INFERENCE), open_all)
        taken: dict[str, int] = {}
        for job_id, site_id in inference.assignments:
            taken[site_id] = taken.get(site_id, 0) + self.pending[job_id].job.spec.total_gpus
        left = [
            dataclasses.replace(c, gpus_used=c.gpus_used + taken.get(c.site_id, 0), power_free_w=c.power_free_w - taken.get(c.site_id, 0) * c.power_per_gpu_w)
            for c in capacities
        ]
        self._assign(inference, t)
        self._assign(place((sj.job for sj in self.pending.values() if sj.arrival.kind == JobKind.TRAINING), left), t)

    def _assign(self, placement: Placement, t: float) -> None:
        for job_id, site_id in placement.assignments:
            sj = self.pending.pop(job_id)
            sj.job, _ = transition(sj.job, JobState.SCHEDULED, f"placed on {site_id}", t, site_id=site_id)
            spec = sj.job.spec
            self.sites[site_id].waiting[job_id] = AiClaim(job_id, spec.kind, spec.priority, sj.job.seq, spec.total_gpus, float(spec.slowdown_tolerance_pct))
        for job_id, reason in placement.pending_reasons.items():
            sj = self.pending[job_id]
            sj.job = dataclasses.replace(sj.job, pending_reason=reason)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, view: SiteView, t: float) -> float:
        site = view.spec.power
        cap, _ = planning_cap(site.cap_w, view.events, site.site_id, t, view.lead_s)
        inputs = SiteInputs(
            site,
            cap,
            self._expected_price(view, t),
            self.scenario.hashprice.at(t),
            tuple(view.running.values()),
            tuple(view.waiting.values()),
            tuple(view.stopping.values()),
            dict(view.targets),
            dict(view.held),
            dict(view.states),
            emergency(view.events, site.site_id, t) is not None,
        )
        out = self.dispatch(inputs, t, self.config.policy)
        plant = view.plant
        for step in out.steps:
            view.steps[step.kind.value] = view.steps.get(step.kind.value, 0) + 1
        for job_id, fraction in out.power_fractions.items():
            view.running[job_id] = dataclasses.replace(view.running[job_id], power_fraction=fraction)
            plant.send(t, ("fraction", job_id, fraction))
        for job_id in (*out.preempt, *out.shed):
            view.stopping[job_id] = view.running.pop(job_id)
            plant.send(t, ("stop", job_id, self._stop_grace_s(view, job_id, t)))
        for job_id, reason in out.requeue.items():
            del view.waiting[job_id]
            sj = self.jobs[job_id]
            sj.job, _ = transition(sj.job, JobState.PENDING, reason, t, site_id="", pending_reason=reason)
            self.pending[job_id] = sj
        for job_id in out.start:
            claim = view.waiting.pop(job_id)
            view.running[job_id] = claim
            sj = self.jobs[job_id]
            sj.job, _ = transition(sj.job, JobState.RUNNING, f"started on {site.site_id}", t, attempt=sj.job.attempt + 1, started_at=t)
            if sj.first_start is None:
                sj.first_start = t
            if sj.arrival.kind == JobKind.INFERENCE and t - sj.waiting_since > self.config.inference_slo_s:
                sj.slo_missed = True
            plant.send(t, ("start", self._run_physics(sj, claim)))
        for job_id, reason in out.waiting_reasons.items():
            sj = self.jobs[job_id]
            sj.job = dataclasses.replace(sj.job, pending_reason=reason)
        for fleet_id, target in out.targets_w.items():
            if abs(target - view.targets.get(fleet_id, -1.0)) > 1e-6:
                view.held[fleet_id] = held_after_target(view.held.get(fleet_id, target), target)
                view.targets[fleet_id] = target
                plant.send(t, ("target", fleet_id, target))
        view.states = dict(out.fleet_states)
        return out.committed_w

    def serve_loads(self, site_id: str) -> dict[str, ServeLoad]:
        """The latest demand and size of each Serve service running on a site, as read."""
        jobs = self.jobs
        return {
            job_id: ServeLoad(rps, replicas)
            for job_id, rps, replicas in self.sites[site_id].serve_readings
            if job_id in jobs and jobs[job_id].job.state == JobState.RUNNING
        }

    # ------------------------------------------------------------------ orders' payloads
    def _stop_grace_s(self, view: SiteView, job_id: str, t: float) -> float:
        """The checkpoint grace the scheduler's core gives a run stopped now: core.runs.preempt
        with the bound core.power_state gives (_grace_left_s): none in an emergency or under
        a cap already in force, else until the planned cut's deadline less the site's lead."""
        site = view.spec.power
        cap, source = planning_cap(site.cap_w, view.events, site.site_id, t, view.lead_s)
        if emergency(view.events, site.site_id, t) is not None or enforced_cap(site.cap_w, view.events, site.site_id, t) <= cap + TARGET_TOLERANCE_W:
            bound: float | None = 0.0
        else:
            bound = None if source is None else max(0.0, source.deadline - view.lead_s - t)
        orders = preempt(self.jobs[job_id].job, "freeing power", t, bound).orders
        return float(next((o.checkpoint_grace_s for o in orders if isinstance(o, StopRun)), 0))

    def _run_physics(self, sj: SimJob, claim: AiClaim) -> RunPhysics:
        a = sj.arrival
        svc = a.service
        return RunPhysics(
            sj.job.job_id,
            claim.gpus,
            claim.power_fraction,
            sj.remaining_s,
            a.value_usd_per_gpu_hour,
            checkpointing=a.checkpointing(),
            progress_s=a.duration_s - sj.remaining_s,
            demand=svc.demand if svc is not None else None,
            replica_gpus=svc.replica_gpus if svc is not None else 0,
        )

    # ------------------------------------------------------------------ records
    def _record(self, view: SiteView, t: float, dt: float, totals: TickTotals, committed_w: float) -> None:
        acc = view.totals
        for name in ("ai_j", "mining_j", "meter_j", "nameplate_j", "unused_headroom_j", "mining_usd", "ai_usd", "power_usd", "violation_s", "lost_gpu_s"):
            setattr(acc, name, getattr(acc, name) + getattr(totals, name))
        acc.peak_meter_w = max(acc.peak_meter_w, totals.peak_meter_w)
        acc.max_excess_w = max(acc.max_excess_w, totals.max_excess_w)
        for job_id, work in totals.work_gpu_s.items():
            self.jobs[job_id].work_gpu_s += work
        for job_id, extra_s in totals.slowdown_s.items():
            self.jobs[job_id].slowdown_s += extra_s
        violated = totals.max_excess_w > 0
        view.violation_ticks += violated
        site, sc = view.spec.power, self.scenario
        it_w = (totals.ai_j + totals.mining_j) / dt if dt > 0 else 0.0
        # dispatch counted each fleet at max(new target, held); view.held is that now (held_after_target)
        unconfirmed = sum(view.held[f] - view.targets[f] for f in view.targets) * site.overhead
        row = Row(
            t,
            site.site_id,
            enforced_cap(site.cap_w, view.events, site.site_id, t),
            planning_cap(site.cap_w, view.events, site.site_id, t, view.lead_s)[0],
            sc.prices.at(view.price_column, t),
            totals.ai_j / dt if dt > 0 else 0.0,
            totals.mining_j / dt if dt > 0 else 0.0,
            it_w * (site.overhead - 1.0),
            committed_w - unconfirmed,
            unconfirmed,
            totals.meter_j / dt if dt > 0 else 0.0,
            totals.peak_meter_w,
            sc.hashprice.at(t),
            int(violated),
            dt,
        )
        self._tick_rows.append(row)

    def _emit_rows(self) -> None:
        """The tick's rows, by site, to the sink (or kept on each site without one)."""
        rows, self._tick_rows = sorted(self._tick_rows, key=lambda r: r.site), []
        for row in rows:
            if self.row_sink is not None:
                self.row_sink(row)
            else:
                self.sites[row.site].rows.append(row)
