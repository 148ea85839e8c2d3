"""Accounting: what each tenant used, integrated from the job event log.

Owns the definitions (docs/usage.md states them for users):
- GPU-seconds: a run's GPUs x the time it was RUNNING (from the event that entered
  RUNNING to the next event of its job), clipped to the window [start, end). Starting,
  the checkpoint grace after a preemption (PREEMPTED) and the stop after a cancel
  (CANCELLING) are not billed.
- Energy at the meter: GPU-seconds x the site's `gpu_load_w` x the run's GPU power
  fraction x the site's `overhead`. The fraction is 1.0 when a run starts and follows
  the power-cap events of the log (`JobEvent.power_fraction`, see jobs.power_capped).
- Cost: meter MWh x the tenant's contract price (`UsageRates`).
- Power caps suffered: times a run went from uncapped to capped within the window;
  capped GPU-seconds: RUNNING GPU-seconds at a fraction below 1.
- Preemptions suffered: events entering PREEMPTED within the window; preempted
  GPU-seconds: the GPU-seconds (within the window) of the runs so stopped, an upper
  bound of the work lost (the log does not say when a run last checkpointed).
- Curtailment credits: the meter energy the power caps kept off the tenant's runs
  (GPU-seconds x load x (1 - fraction) x overhead) x the tenant's credit rate.

Invariants: a tenant's totals are the sums of its jobs' figures; a `UsageTally` fed the
same events in the same order gives the same figures whether it is read once at the
end (a report) or along the way (metrics: `figures(now)` never changes the tally).
Pure: events, GPU counts and site power settings in; no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from scheduler.core.jobs import ACTIVE, JobEvent, JobState
from scheduler.core.power import SitePower

J_PER_MWH = 3.6e9


@dataclass(frozen=True)
class UsageRates:
    """A tenant's prices: its contract price for energy and the credit it gets per MWh curtailed."""

    price_usd_per_mwh: float = 0.0
    credit_usd_per_mwh: float = 0.0


@dataclass
class UsageFigures:
    """What one job or one tenant used (mutable while a tally adds to it)."""

    gpu_s: float = 0.0
    capped_gpu_s: float = 0.0
    it_j: float = 0.0  # GPU IT energy
    meter_j: float = 0.0  # IT energy x the site's overhead
    curtailed_j: float = 0.0  # meter energy the power caps kept off
    caps: int = 0
    preemptions: int = 0
    preempted_gpu_s: float = 0.0

    def add(self, other: UsageFigures) -> None:
        for f in _FIGURE_FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    @property
    def meter_mwh(self) -> float:
        return self.meter_j / J_PER_MWH

    @property
    def curtailed_mwh(self) -> float:
        return self.curtailed_j / J_PER_MWH


_FIGURE_FIELDS = tuple(f.name for f in dataclasses.fields(UsageFigures))


@dataclass(frozen=True)
class TenantUsage:
    """A tenant's usage over [start, end): totals, the jobs they sum, the money."""

    tenant: str
    start: float
    end: float
    totals: UsageFigures
    jobs: tuple[tuple[str, UsageFigures], ...]  # (job_id, figures), jobs with anything to show
    rates: UsageRates
    unknown_sites: tuple[str, ...] = ()  # sites whose power settings are unknown: their energy is not counted

    @property
    def cost_usd(self) -> float:
        return self.totals.meter_mwh * self.rates.price_usd_per_mwh

    @property
    def credits_usd(self) -> float:
        return self.totals.curtailed_mwh * self.rates.credit_usd_per_mwh


@dataclass
class _Segment:
    """A run RUNNING at one power fraction since `since`."""

    tenant: str
    job_id: str
    run_id: str
    site_id: str
    since: float
    fraction: float
    gpus: int


@dataclass
class UsageTally:
    """Adds events up, in log order. `per_job` keeps each job's figures (a report); metrics
    keep tenant totals only, and forget a run once it ended, so memory follows active runs."""

    sites: Mapping[str, SitePower]
    gpus: Callable[[str], int]  # job_id -> the GPUs its runs hold
    start: float = -math.inf
    end: float = math.inf
    per_job: bool = False
    tenants: dict[str, UsageFigures] = field(default_factory=dict)
    jobs: dict[str, UsageFigures] = field(default_factory=dict)
    unknown_sites: set[str] = field(default_factory=set)
    _open: dict[str, _Segment] = field(default_factory=dict)  # job_id -> its run's segment now
    _fraction: dict[str, float] = field(default_factory=dict)  # run_id -> power fraction (runs not at 1.0)
    _run_gpu_s: dict[str, float] = field(default_factory=dict)  # run_id -> GPU-seconds in the window

    def add(self, event: JobEvent) -> None:
        segment = self._open.pop(event.job_id, None)
        if segment is not None:
            self._credit(segment, self._segment_figures(segment, event.at))
        inside = self.start <= event.at < self.end
        if event.power_fraction is not None:
            if event.power_fraction < 1.0 <= self._fraction.get(event.run_id, 1.0) and inside:
                self._count(event.tenant, event.job_id, UsageFigures(caps=1))
            self._fraction[event.run_id] = event.power_fraction
        if event.to_state == JobState.PREEMPTED and event.from_state != JobState.PREEMPTED and inside:
            self._count(event.tenant, event.job_id, UsageFigures(preemptions=1, preempted_gpu_s=self._run_gpu_s.get(event.run_id, 0.0)))
        if event.to_state == JobState.RUNNING:
            self.resume(event.tenant, event.job_id, event.run_id, event.site_id, event.at, self._fraction.get(event.run_id, 1.0))
        elif event.to_state not in ACTIVE:  # the run ended (or never started): forget it
            self._fraction.pop(event.run_id, None)
            self._run_gpu_s.pop(event.run_id, None)

    def add_all(self, events: Iterable[JobEvent]) -> None:
        for event in events:
            self.add(event)

    def resume(self, tenant: str, job_id: str, run_id: str, site_id: str, since: float, fraction: float) -> None:
        """A run RUNNING from `since` at `fraction` (from an event, or a running job a
        restarted scheduler finds: metrics count from then on)."""
        self._open[job_id] = _Segment(tenant, job_id, run_id, site_id, since, fraction, self.gpus(job_id))
        if fraction < 1.0:
            self._fraction[run_id] = fraction

    def figures(self, at: float) -> dict[str, UsageFigures]:
        """Each tenant's totals with its running runs counted up to `at`; the tally is unchanged."""
        out = {tenant: dataclasses.replace(f) for tenant, f in self.tenants.items()}
        for segment in self._open.values():
            out.setdefault(segment.tenant, UsageFigures()).add(self._segment_figures(segment, at))
        return out

    def close(self, at: float) -> None:
        """Count every running run up to `at` (a report's end)."""
        for job_id in list(self._open):
            segment = self._open.pop(job_id)
            self._credit(segment, self._segment_figures(segment, at))

    def _segment_figures(self, segment: _Segment, until: float) -> UsageFigures:
        lo, hi = max(segment.since, self.start), min(until, self.end)
        if hi <= lo:
            return UsageFigures()
        gpu_s = segment.gpus * (hi - lo)
        figures = UsageFigures(gpu_s=gpu_s, capped_gpu_s=gpu_s if segment.fraction < 1.0 else 0.0)
        site = self.sites.get(segment.site_id)
        if site is None:
            self.unknown_sites.add(segment.site_id)
            return figures
        load_j = gpu_s * site.gpu_load_w
        figures.it_j = load_j * segment.fraction
        figures.meter_j = figures.it_j * site.overhead
        figures.curtailed_j = load_j * max(0.0, 1.0 - segment.fraction) * site.overhead
        return figures

    def _credit(self, segment: _Segment, figures: UsageFigures) -> None:
        self._count(segment.tenant, segment.job_id, figures)
        if figures.gpu_s:
            self._run_gpu_s[segment.run_id] = self._run_gpu_s.get(segment.run_id, 0.0) + figures.gpu_s

    def _count(self, tenant: str, job_id: str, figures: UsageFigures) -> None:
        self.tenants.setdefault(tenant, UsageFigures()).add(figures)
        if self.per_job:
            self.jobs.setdefault(job_id, UsageFigures()).add(figures)


def tenant_usage(
    tenant: str,
    events: Iterable[JobEvent],
    gpus: Callable[[str], int],
    sites: Mapping[str, SitePower],
    start: float,
    end: float,
    rates: UsageRates = UsageRates(),
) -> TenantUsage:
    """A tenant's usage over [start, end) from its job events in log order (every event of
    a run that overlaps the window must be there: from before `start` on). Events of other
    tenants are ignored. Runs still RUNNING after the last event count up to `end`."""
    tally = UsageTally(sites, gpus, start, end, per_job=True)
    tally.add_all(e for e in events if e.tenant == tenant)
    tally.close(end)
    jobs = tuple(sorted((job_id, f) for job_id, f in tally.jobs.items() if any(getattr(f, n) for n in _FIGURE_FIELDS)))
    return TenantUsage(tenant, start, end, tally.tenants.get(tenant, UsageFigures()), jobs, rates, tuple(sorted(tally.unknown_sites)))
