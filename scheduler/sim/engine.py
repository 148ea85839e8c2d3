"""The simulator's tick loop: physics, delays and a fake clock around the scheduler's own decisions.

Every decision is the real scheduler's: the scheduler side is a SimScheduler
(scheduler_side.py: a JobTable and the power state machine core/power_state.py, fed as
the controller feeds them, see tests/unit/test_power_replay.py). The simulator adds only
what the world does. Each tick (`tick_s`, default 60 s), in this order:
1. the agents' messages that have arrived are handed to the scheduler side as the agent
   service hands them to the controller: run reports (started: RUNNING; ended: SUCCEEDED;
   stopped: STOPPED, with the work it lost counted back; each Serve service's demand
   and size) and one power reading per site (fleets measured and the targets they ramp
   to, the meter, the runs still drawing);
2. prices and hashprice that have changed are posted as grid events (what a price feed
   would post: the last settled real-time price; the day-ahead forecast of each interval
   `SimConfig.forecast_ahead_s` ahead, as a day-ahead feed posts the market's), the
   scenario's cap limits and emergencies are posted when the grid tells of them (their
   `notified_at`, at the first tick from then; one with no notice time is announced at
   the start of the run);
3. jobs that have arrived are submitted;
4. a scheduling pass (placement), a dispatch pass over every site, a Serve scaling pass
   and the overdue-stop check, as the controller's loops run them;
5. the orders each site got go to its plant (physics.Plant), which applies them
   `order_delay_s` later; each site's plant runs until the next tick.
The planning lead is the scheduler's (core/power_state.py: slowest ramp-down plus
`cap_lead_s`, here the order delay plus one tick unless `SimConfig.lead_s` says, plus the
longest checkpoint grace of training running there). Nothing here reads the wall clock.

Records stream out: each tick's rows go to the `rows` sink as the tick completes (kept
in SiteView.rows only when no sink is given: tests and small runs), and a finished job
is folded into `finished` (tally.JobTally: the counts the report needs) and dropped, so
memory does not grow with the days simulated. `on_finished` sees each job before it is
dropped; grid event records over and done with are dropped too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.core.decisions import CapRunPower, Order, ScaleRun, SetMiningTargets, StartRun, StopRun
from scheduler.core.dispatch import dispatch_site
from scheduler.core.grid import GridEvent, GridEventKind, enforced_cap
from scheduler.core.jobs import Job, JobEvent, JobKind, JobState, parse_run_id
from scheduler.core.power_state import DispatchPass, PowerReading, PowerSettings, SitePowerState
from scheduler.core.runs import RunReport, RunState, ServeLoad
from scheduler.sim.physics import Environment, Plant, RunPhysics, TickTotals
from scheduler.sim.records import Row, Scenario, SimConfig, SimJob
from scheduler.sim.scenario import ScenarioSite
from scheduler.sim.scheduler_side import SimScheduler
from scheduler.sim.tally import JobTally
from scheduler.sim.traces import DAY_AHEAD_COLUMN, REAL_TIME_COLUMN

__all__ = ["Row", "Scenario", "SimConfig", "SimJob", "Simulator", "SiteView"]
FORGET_EVERY_S = 3600.0  # how often grid event records over and done with are dropped


@dataclass
class SiteView:
    """A site's world (its plant, its events, its price columns) and what the run recorded."""

    spec: ScenarioSite
    plant: Plant
    power: SitePowerState  # the scheduler side's state of the site (read only here)
    lead_s: float
    price_column: str
    forecast_column: str | None
    events: tuple[GridEvent, ...]
    cap_changes: tuple[float, ...]
    totals: TickTotals = field(default_factory=TickTotals)
    violation_ticks: int = 0
    event_figures: dict[str, list[float]] = field(default_factory=dict)  # cap limit -> [seconds over its cap, largest excess W]
    rows: list[Row] = field(default_factory=list)
    serve_readings: tuple = ()  # the latest ((job, requests/s, replicas), ...) of its Serve services
    fleets_read: dict[str, tuple[float, float]] = field(default_factory=dict)  # fleet readings of the tick being taken in
    by_interval: dict[int, list[float]] = field(default_factory=dict)  # price interval -> [mining J, J mining could have drawn under the cap, seconds] (report.py: program, 4CP)

    @property
    def steps(self) -> dict[str, int]:
        """Ladder step kind -> how many the scheduler took at this site."""
        return self.power.ladder_steps


def power_settings(config: SimConfig, scenario: Scenario) -> PowerSettings:
    cap_lead = config.order_delay_s + config.tick_s if config.lead_s is None else config.lead_s
    return PowerSettings(config.policy, cap_lead, scenario.hashprice.at(scenario.start), config.serve_cooldown_s)


class Simulator:
    """Replays a Scenario; `dispatch` can be swapped (tests feed it a broken one)."""

    def __init__(
        self,
        scenario: Scenario,
        config: SimConfig = SimConfig(),
        dispatch: DispatchPass = dispatch_site,
        rows: Callable[[Row], None] | None = None,
        on_finished: Callable[[SimJob], None] | None = None,
    ):
        self.scenario, self.config = scenario, config
        self.row_sink, self.on_finished = rows, on_finished
        self.finished = JobTally()  # jobs done and dropped
        self.jobs: dict[str, SimJob] = {}  # jobs arrived and not finished
        self.admitted = 0
        self.tick_count = 0
        self._now = scenario.start
        self._tick_rows: list[Row] = []
        self._posted: dict[tuple, float | None] = {}  # (kind, node) -> the value posted last
        self._day_ahead_next: dict[str, int] = {}  # node -> the next forecast interval to post
        self._forgotten_at = scenario.start
        sites = [dataclasses.replace(s, power=dataclasses.replace(s.power, market_node=s.market_node)) for s in scenario.sites]  # prices by node
        self.scheduler = SimScheduler(power_settings(config, scenario), sites, scenario.start, self._on_event, dispatch, config.preemption, config.tenancy)
        reading_delay = config.tick_s if config.reading_delay_s is None else config.reading_delay_s
        self.sites: dict[str, SiteView] = {}
        for spec in scenario.sites:
            events = tuple(e for e in scenario.events if e.site_id == spec.site_id)
            changes = sorted({t for e in events if e.kind == GridEventKind.CAP_LIMIT for t in (e.deadline, e.end)})
            fc = scenario.forecast.node_column(spec.market_node, DAY_AHEAD_COLUMN) if scenario.forecast else None
            self.sites[spec.site_id] = SiteView(
                spec,
                Plant(spec.power, config.order_delay_s, reading_delay, config.speed),
                self.scheduler.power.sites[spec.site_id],
                self.scheduler.power.lead_s(spec.site_id),
                scenario.prices.node_column(spec.market_node, REAL_TIME_COLUMN),
                fc,
                events,
                tuple(changes),
            )
        told = sorted(scenario.events, key=lambda e: (e.notified_at, e.start, e.event_id))
        self._untold = [e for e in told if e.notified_at > scenario.start]  # posted when the grid tells of them
        for event in told[: len(told) - len(self._untold)]:  # announced ahead
            self.scheduler.post_grid_event(event, scenario.start)

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
        self._now = t
        scheduler = self.scheduler
        for view in self.sites.values():
            self._take_messages(view, t)
        self._post_prices(t)
        while self._untold and self._untold[0].notified_at <= t:
            self.scheduler.post_grid_event(self._untold.pop(0), t)
        self._admit_arrivals(t)
        scheduler.schedule(t)
        scheduler.dispatch(t)
        scheduler.scale(t)
        scheduler.check_time(t)
        for site_id, view in self.sites.items():
            self._send(view, scheduler.take_orders(site_id), t)
            totals = view.plant.advance(t, t_next, self._environment(view))
            self._record(view, t, t_next - t, totals)
        self._emit_rows()
        if t - self._forgotten_at >= FORGET_EVERY_S:
            scheduler.power.forget_ended(t)
            self._forgotten_at = t
        self.tick_count += 1

    # ------------------------------------------------------------------ the world
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

    def _post_prices(self, t: float) -> None:
        """What a price feed posts: each node's last settled real-time price and its day-ahead
        forecast, and the hashprice, whenever they change (open-ended: the newest counts)."""
        sc = self.scenario
        for view in self.sites.values():
            node = view.spec.market_node
            settled = sc.prices.settled_before(view.price_column, t)
            if settled is not None and self._changed(("rt", node), settled):
                self.scheduler.post_grid_event(GridEvent(f"rt-{node}-{int(t)}", GridEventKind.PRICE, t, market_node=node, usd_per_mwh=settled), t)
            if sc.forecast is not None and view.forecast_column:
                fc, i = sc.forecast, self._day_ahead_next.get(node, sc.forecast.index_at(t))
                while i < len(fc.times) and fc.times[i] <= t + self.config.forecast_ahead_s:
                    start, ahead = fc.times[i], fc.columns[view.forecast_column][i]
                    self.scheduler.post_grid_event(GridEvent(f"da-{node}-{int(start)}", GridEventKind.PRICE, start, market_node=node, usd_per_mwh=ahead, forecast=True), t)
                    i += 1
                self._day_ahead_next[node] = i
        hashprice = sc.hashprice.at(t)
        if self._changed(("hashprice",), hashprice):
            self.scheduler.post_grid_event(GridEvent(f"hashprice-{int(t)}", GridEventKind.HASHPRICE, t, hashprice_usd_per_ph_day=hashprice), t)

    def _changed(self, feed: tuple, value: float) -> bool:
        """Whether a feed's value differs from what was posted last (and remember it)."""
        if self._posted.get(feed) == value:
            return False
        self._posted[feed] = value
        return True

    # ------------------------------------------------------------------ agents' messages in
    def _run_id(self, job_id: str) -> str:
        return self.scheduler.jobs[job_id].run_id

    def _take_messages(self, view: SiteView, t: float) -> None:
        site_id, reports = view.spec.site_id, []
        for message in view.plant.receive(t):
            match message:
                case ("started", job_id):
                    reports.append(RunReport(self._run_id(job_id), RunState.RUNNING))
                case ("reading", fleet_id, measured, acked):
                    view.fleets_read[fleet_id] = (measured, acked)
                case ("meter", meter_w, gpu_w, active):
                    runs = self.scheduler.jobs
                    reading = PowerReading(
                        dict(view.fleets_read), it_w=meter_w / view.spec.power.overhead, gpu_w=gpu_w, meter_w=meter_w, active_runs=frozenset(runs[j].run_id for j in active if j in runs)
                    )
                    view.fleets_read = {}
                    self.scheduler.on_run_reports(site_id, reports, t)
                    reports = []
                    self.scheduler.on_reading(site_id, reading, t)
                case ("ended", job_id, at):
                    self.jobs[job_id].remaining_s, self.jobs[job_id].finished_at = 0.0, at
                    reports.append(RunReport(self._run_id(job_id), RunState.SUCCEEDED))
                case ("serve", loads):
                    view.serve_readings = loads
                    runs = self.scheduler.jobs
                    demand = [RunReport(runs[j].run_id, RunState.RUNNING, serve=ServeLoad(rps, n)) for j, rps, n in loads if j in runs]
                    self.scheduler.on_demand(site_id, demand, t)
                case ("stopped", job_id, remaining_s, lost_s):
                    sj = self.jobs[job_id]
                    sj.lost_s += lost_s
                    sj.remaining_s = remaining_s
                    reports.append(RunReport(self._run_id(job_id), RunState.STOPPED))
        if reports:
            self.scheduler.on_run_reports(site_id, reports, t)

    def _on_event(self, job: Job, event: JobEvent) -> None:
        """The simulator's books follow the scheduler's transitions."""
        sj = self.jobs.get(job.job_id)
        if sj is None:
            return
        sj.job = job
        if event.to_state == JobState.PENDING and event.from_state == JobState.PREEMPTED:
            sj.preemptions += 1
            sj.waiting_since = self._now
        elif event.to_state == JobState.PREEMPTED and job.preempted_for:
            sj.priority_preemptions += 1
        elif event.to_state == JobState.SUCCEEDED:
            del self.jobs[job.job_id]
            self.finished.add(sj, self.scenario.end, self.config)
            if self.on_finished:
                self.on_finished(sj)
            self.scheduler.forget(job.job_id)

    def _admit_arrivals(self, t: float) -> None:
        arrivals = self.scenario.arrivals
        while self.admitted < len(arrivals) and self.scenario.start + arrivals[self.admitted].time_s <= t:
            a = arrivals[self.admitted]
            self.admitted += 1
            job_id = a.job_id or f"job-{self.admitted:06d}"
            if job_id in self.jobs or job_id in self.scheduler.jobs:
                job_id = f"{job_id}-{self.admitted}"
            at = self.scenario.start + a.time_s
            sj = self.jobs[job_id] = SimJob(a, None, at, a.duration_s, at)  # type: ignore[arg-type]
            sj.job = self.scheduler.submit(job_id, a.tenant, a.job_spec(), t)

    # ------------------------------------------------------------------ orders out
    def _send(self, view: SiteView, orders: list[Order], t: float) -> None:
        plant = view.plant
        for order in orders:
            match order:
                case SetMiningTargets():
                    for fleet_id, target in order.targets_w.items():
                        plant.send(t, ("target", fleet_id, target))
                case CapRunPower():
                    plant.send(t, ("fraction", parse_run_id(order.run_id)[0], order.power_fraction))
                case StopRun():
                    plant.send(t, ("stop", parse_run_id(order.run_id)[0], order.checkpoint_grace_s))
                case ScaleRun():
                    plant.send(t, ("scale", parse_run_id(order.run_id)[0], order.replicas))
                case StartRun():
                    sj = self.jobs[order.job_id]
                    if sj.first_start is None:
                        sj.first_start = t
                    if sj.arrival.kind == JobKind.INFERENCE and t - sj.waiting_since > self.config.inference_slo_s:
                        sj.slo_missed = True
                    plant.send(t, ("start", self._run_physics(sj, self.scheduler.jobs[order.job_id])))

    def _run_physics(self, sj: SimJob, job: Job) -> RunPhysics:
        a = sj.arrival
        svc = a.service
        return RunPhysics(
            job.job_id,
            job.total_gpus,
            job.power_fraction,
            sj.remaining_s,
            a.value_usd_per_gpu_hour,
            checkpointing=a.checkpointing(),
            progress_s=a.duration_s - sj.remaining_s,
            demand=svc.demand if svc is not None else None,
            replica_gpus=svc.replica_gpus if svc is not None else 0,
        )

    # ------------------------------------------------------------------ queries
    @property
    def pending(self) -> dict[str, SimJob]:
        """Jobs waiting in the queue."""
        return {j.job_id: self.jobs[j.job_id] for j in self.scheduler.jobs.pending() if j.job_id in self.jobs}

    def on_site(self, site_id: str) -> dict[str, Job]:
        """The jobs holding (or waiting for) a site's GPUs: placed, running or stopping."""
        return {j.job_id: j for j in self.scheduler.jobs.on_site(site_id)}

    def serve_loads(self, site_id: str) -> dict[str, ServeLoad]:
        """The latest demand and size of each Serve service running on a site, as read."""
        jobs = self.scheduler.jobs
        return {
            job_id: ServeLoad(rps, replicas)
            for job_id, rps, replicas in self.sites[site_id].serve_readings
            if job_id in jobs and jobs[job_id].state == JobState.RUNNING
        }

    # ------------------------------------------------------------------ records
    def _record(self, view: SiteView, t: float, dt: float, totals: TickTotals) -> None:
        acc = view.totals
        for name in ("ai_j", "mining_j", "meter_j", "nameplate_j", "unused_headroom_j", "mining_usd", "ai_usd", "power_usd", "violation_s", "lost_gpu_s"):
            setattr(acc, name, getattr(acc, name) + getattr(totals, name))
        acc.peak_meter_w = max(acc.peak_meter_w, totals.peak_meter_w)
        part = view.by_interval.setdefault(self.scenario.prices.index_at(t), [0.0, 0.0, 0.0])
        part[0], part[1], part[2] = part[0] + totals.mining_j, part[1] + totals.mining_j + totals.unused_headroom_j, part[2] + dt
        acc.max_excess_w = max(acc.max_excess_w, totals.max_excess_w)
        for job_id, work in totals.work_gpu_s.items():
            self.jobs[job_id].work_gpu_s += work
        for job_id, extra_s in totals.slowdown_s.items():
            self.jobs[job_id].slowdown_s += extra_s
        st = view.power
        violated = totals.max_excess_w > 0
        view.violation_ticks += violated
        cut = _cut_during(view.events, t, t + dt)
        if cut is not None:
            figures = view.event_figures.setdefault(cut.event_id, [0.0, 0.0])
            figures[0] += totals.violation_s
            figures[1] = max(figures[1], totals.max_excess_w)
        site, sc = view.spec.power, self.scenario
        it_w = (totals.ai_j + totals.mining_j) / dt if dt > 0 else 0.0
        # dispatch counted each fleet at max(new target, held); st.held is that now (held_after_target)
        unconfirmed = sum(st.held[f] - st.targets[f] for f in st.targets) * site.overhead
        row = Row(
            t,
            site.site_id,
            enforced_cap(site.cap_w, view.events, site.site_id, t),
            st.cap_w,
            sc.prices.at(view.price_column, t),
            totals.ai_j / dt if dt > 0 else 0.0,
            totals.mining_j / dt if dt > 0 else 0.0,
            it_w * (site.overhead - 1.0),
            st.committed_w - unconfirmed,
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


def _cut_during(events: tuple[GridEvent, ...], t0: float, t1: float) -> GridEvent | None:
    """The tightest cap limit enforced at some moment of [t0, t1) (its figures get the tick's)."""
    cuts = [e for e in events if e.kind == GridEventKind.CAP_LIMIT and e.deadline < t1 and e.end > t0]
    return min(cuts, key=lambda e: e.cap_w, default=None)
