"""The scheduler's side of a simulation: the controller's decisions, made by the same code.

`SimScheduler` keeps what the real controller keeps in memory (a JobTable, the power
state machine core/power_state.py) and feeds it the same way: run reports through
core.runs.on_run_reports and the power state's RunsReported, readings as PowerRead,
grid events as GridEventPosted, placement through core.priority.schedule_pass on the
sites' capacities (PowerState.site_capacity: placement, preemption for priority under the
same PreemptionPolicy, contracts and fair share under the same TenancyPolicy, core.runs.schedule), dispatch as DispatchDue,
Serve scaling as ScalingDue, and overdue stops as core.runs.overdue_preemptions.
Each decision is applied as the controller applies it (memory first; the starts a
power-managed site must hold go to the power state, every other order out), except
that nothing is persisted: orders are queued per site for the simulator's plant.

Only physics, delays and the clock are the simulator's own (engine.py, physics.py);
tests/unit/test_power_replay.py replays one event sequence through this and through
the real controller and requires the same decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from scheduler.core import runs
from scheduler.core.contracts import TenancyPolicy
from scheduler.core.cut_order import cut_ranks
from scheduler.core.decisions import Decision, Order
from scheduler.core.dispatch import dispatch_site
from scheduler.core.grid import GridEvent
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import TERMINAL, Job, JobEvent, JobSpec, new_job
from scheduler.core.power_state import (
    DispatchDue,
    DispatchPass,
    GridEventPosted,
    PowerRead,
    PowerReading,
    PowerSettings,
    PowerState,
    RunsReported,
    ScalingDue,
    SiteAttached,
)
from scheduler.core.priority import PreemptionPolicy, schedule_pass
from scheduler.sim.scenario import ScenarioSite


class SimScheduler:
    def __init__(
        self,
        settings: PowerSettings,
        sites: Iterable[ScenarioSite],
        now: float,
        on_event: Callable[[Job, JobEvent], None] | None = None,
        dispatch: DispatchPass = dispatch_site,
        preemption: PreemptionPolicy = PreemptionPolicy(),
        tenancy: TenancyPolicy | None = None,
    ):
        self.jobs = JobTable()
        self.preemption = preemption
        self.tenancy = tenancy  # contracts and fair share (core/contracts.py), as the controller's
        self.power = PowerState(settings, dispatch=dispatch)
        self.sites = {s.site_id: s for s in sites}
        regions = {s.site_id: s.region for s in self.sites.values()}
        self.power.give_way = cut_ranks(lambda: self.tenancy, lambda: regions, self.power.sites)  # the contracts' cut order
        self.outbox: dict[str, list[Order]] = {site_id: [] for site_id in self.sites}
        self.on_event = on_event  # sees every transition (the simulator's accounting)
        self._seq = 0
        for site in self.sites.values():
            self.apply(self.power.handle(SiteAttached(site.site_id, site.power), self.jobs, now))

    # ------------------------------------------------------------- applying
    def apply(self, decision: Decision) -> None:
        """As the controller applies a decision: memory first, then the urgent orders and the
        others (nothing to persist here)."""
        self.jobs.take(decision)
        if self.on_event is not None:
            for event in decision.events:
                self.on_event(self.jobs[event.job_id], event)
        for order in [*decision.urgent, *self.power.hold_starts(decision.orders)]:
            self.outbox.setdefault(order.site_id, []).append(order)

    def take_orders(self, site_id: str) -> list[Order]:
        orders, self.outbox[site_id] = self.outbox.get(site_id, []), []
        return orders

    def forget(self, job_id: str) -> None:
        """Drop a terminal job (a long simulation keeps only what is active)."""
        job = self.jobs.get(job_id)
        if job is not None and job.state in TERMINAL:
            self.jobs.discard(job_id)

    # ------------------------------------------------------------- stimuli
    def submit(self, job_id: str, tenant: str, spec: JobSpec, now: float) -> Job:
        self._seq += 1
        job, event = new_job(job_id, tenant, job_id, spec, self._seq, now)
        self.apply(Decision(jobs=[job], events=[event]))
        return self.jobs[job_id]

    def on_run_reports(self, site_id: str, reports: Iterable[runs.RunReport], now: float) -> None:
        reports = tuple(reports)
        decision = runs.on_run_reports(self.jobs, site_id, reports, now)
        decision.extend(self.power.handle(RunsReported(site_id, reports), self.jobs, now))
        self.apply(decision)

    def on_demand(self, site_id: str, reports: Iterable[runs.RunReport], now: float) -> None:
        """Reports that only carry Serve services' demand (running runs still running): the
        power state's scaler reads them (RunsReported). The controller also writes each on
        its job (`requests_per_s`, core.runs.observe) for tenants to read; no decision reads
        it there, so the simulator, which reads it every tick for every service, skips that copy."""
        self.apply(self.power.handle(RunsReported(site_id, tuple(reports)), self.jobs, now))

    def on_reading(self, site_id: str, reading: PowerReading, now: float) -> None:
        self.apply(self.power.handle(PowerRead(site_id, reading), self.jobs, now))

    def post_grid_event(self, event: GridEvent, now: float) -> None:
        self.apply(self.power.handle(GridEventPosted(event, frozenset(self.sites)), self.jobs, now))

    def schedule(self, now: float) -> None:
        pending = self.jobs.pending()
        if not pending:
            return
        usage = self.jobs.gpus_in_use()
        need = min(j.spec.total_gpus for j in pending)
        capacities = [
            self.power.site_capacity(s.site_id, s.region, (s.power.gpus, usage.get(s.site_id, (0, 0))[0]), "", self.jobs, now, need) for s in self.sites.values()
        ]
        self.apply(schedule_pass(pending, capacities, self.jobs, self.jobs.on_site, self.preemption, now, self.tenancy))

    def dispatch(self, now: float, sweep: bool = True) -> None:
        self.apply(self.power.handle(DispatchDue(sweep), self.jobs, now))

    def scale(self, now: float) -> None:
        self.apply(self.power.handle(ScalingDue({s.site_id: s.power.gpus for s in self.sites.values()}), self.jobs, now))

    def check_time(self, now: float) -> None:
        """What the controller's liveness loop does with time: runs past max_runtime_s, stops overdue after their grace."""
        active = self.jobs.active()
        decision = runs.enforce_max_runtime(active, now)
        decision.extend(runs.overdue_preemptions(active, now))
        self.apply(decision)
