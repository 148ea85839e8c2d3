"""Serve inference scaling: demand readings in, replica sizes and ScaleRun orders out.

It owns what core/autoscale.py needs between readings and what the site's power
dispatch must count while a size changes:

- per Serve run: the demand its agent reported last (`demand`; the job's
  `requests_per_s` is the same reading kept for tenants, and the fallback after a restart);
- per Serve job: the low-demand state and when its size was last set (memory; a
  restart only delays the next scale-down);
- scale-ups waiting for power (`growing`, power-managed sites): dispatch reserves
  their extra GPUs like a placed run's (make room first), and only once they fit
  does the job's new size get decided and a ScaleRun go to the agent;
- scale-downs the agent has not confirmed yet (`shrinking`): the job's size is
  decided at once, but the replicas it gives up are counted as stopping until
  the agent reports the run at or under its new size.

A site without power management scales on GPUs alone: up as far as free GPUs
allow, down at once. A size change is a job change (the job's `replicas`), not a
state transition: it writes no job event; it is noted in the log.

Pure: `now`, the jobs and the free GPUs are arguments; it is one part of the power
state machine (power_state.py), which calls it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from scheduler.core.autoscale import LowDemand, ScalePolicy, next_replicas, within_gpus
from scheduler.core.decisions import Decision, ScaleRun
from scheduler.core.dispatch import SiteDispatch
from scheduler.core.jobs import Job, JobState
from scheduler.core.ledger import AiClaim, claim_for
from scheduler.core.runs import RUN_ACTIVE, RunReport


@dataclass(frozen=True)
class Shrink:
    site_id: str
    job_id: str
    replicas: int  # the size ordered
    before: int  # the size it had: the difference still draws until confirmed


@dataclass
class ServeScaling:
    policy: ScalePolicy = ScalePolicy()
    low: dict[str, LowDemand] = field(default_factory=dict)
    sized_at: dict[str, float] = field(default_factory=dict)  # job_id -> when its current size was set
    growing: dict[str, int] = field(default_factory=dict)  # job_id -> replicas wanted, waiting for power
    grow_why: dict[str, str] = field(default_factory=dict)  # job_id -> what its waiting scale-up is for
    shrinking: dict[str, Shrink] = field(default_factory=dict)  # run_id -> a scale-down not yet confirmed
    demand: dict[str, float] = field(default_factory=dict)  # run_id -> requests/s its agent reported last

    # ------------------------------------------------------------- readings
    def observe(self, site_id: str, report: RunReport) -> bool:
        """An agent's report of a run: a scale-down is confirmed once the run is at or
        under its new size. True: the site's power changed (dispatch it)."""
        if report.state not in RUN_ACTIVE:
            self.demand.pop(report.run_id, None)
        elif report.serve is not None:
            self.demand[report.run_id] = report.serve.requests_per_s
        shrink = self.shrinking.get(report.run_id)
        if shrink is None or shrink.site_id != site_id:
            return False
        if report.state not in RUN_ACTIVE or (report.serve is not None and report.serve.replicas <= shrink.replicas):
            del self.shrinking[report.run_id]
            return True
        return False

    # ------------------------------------------------------------- for dispatch
    def growing_claims(self, site_id: str, jobs: Mapping[str, Job]) -> tuple[AiClaim, ...]:
        """The extra GPUs of scale-ups waiting for power at a site."""
        claims = []
        for job_id, replicas in self.growing.items():
            job = jobs.get(job_id)
            if job is None or job.site_id != site_id or job.state != JobState.RUNNING:
                continue
            extra = (replicas - job.current_replicas) * job.spec.resources.gpus
            if extra > 0:
                claims.append(dataclasses.replace(claim_for(job), gpus=extra, gpus_per_replica=0, min_gpus=0))
        return tuple(claims)

    def stopping_claims(self, site_id: str, jobs: Mapping[str, Job]) -> list[AiClaim]:
        """Replicas ordered away but not yet confirmed gone: they still draw."""
        claims = []
        for shrink in self.shrinking.values():
            job = jobs.get(shrink.job_id)
            if job is None or shrink.site_id != site_id:
                continue
            gpus = (shrink.before - shrink.replicas) * job.spec.resources.gpus
            claims.append(dataclasses.replace(claim_for(job), job_id=f"{job.job_id}:scaling-down", gpus=gpus, gpus_per_replica=0, min_gpus=0))
        return claims

    def apply_dispatch(self, out: SiteDispatch, decision: Decision, cause: str, jobs: Mapping[str, Job], now: float) -> None:
        """Scale-ups that fit now and scale-downs the ladder decided, into `decision`
        (dispatch runs only for power-managed sites)."""
        for job_id in out.grow:
            job, replicas = jobs.get(job_id), self.growing.pop(job_id, 0)
            if job is not None and job.state == JobState.RUNNING and replicas > job.current_replicas:
                self._resize(decision, job, replicas, self.grow_why.pop(job_id, "demand"), now, managed=True)
        for job_id, gpus in out.shrink.items():
            job = jobs.get(job_id)
            per_replica = job.spec.resources.gpus if job is not None else 0
            if job is None or per_replica <= 0 or not job.spec.served:
                continue
            self.growing.pop(job_id, None)
            self._resize(decision, job, max(job.spec.replica_bounds[0], gpus // per_replica), f"power: {cause}", now, managed=True)

    # ------------------------------------------------------------- demand
    def _resize(self, decision: Decision, job: Job, replicas: int, why: str, now: float, managed: bool) -> Job:
        before = job.current_replicas
        job = decision.record(dataclasses.replace(job, replicas=replicas))
        decision.orders.append(ScaleRun(job.site_id, job.run_id, replicas, why))
        self.sized_at[job.job_id] = now
        self.low.pop(job.job_id, None)
        if replicas < before and managed:
            previous = self.shrinking.get(job.run_id)
            self.shrinking[job.run_id] = Shrink(job.site_id, job.job_id, replicas, max(before, previous.before if previous else 0))
        ids = {"job_id": job.job_id, "run_id": job.run_id, "site_id": job.site_id, "tenant": job.tenant}
        decision.notes.append(("info", f"job {job.job_id} ({job.site_id}): {before} -> {replicas} replicas: {why}", ids))
        return job

    def step(self, served: list[Job], free_gpus: dict[str, int], manages: Callable[[str], bool], now: float) -> tuple[Decision, set[str]]:
        """One pass over every running Serve service: its size for its demand now.
        Returns the decision and the power-managed sites whose dispatch must reserve a scale-up."""
        decision, to_dispatch = Decision(), set()
        live = {j.job_id for j in served}
        for table in (self.low, self.sized_at, self.growing, self.grow_why):
            for job_id in [k for k in table if k not in live]:
                del table[job_id]
        if len(self.demand) > 2 * len(served) + 16:  # runs that ended unreported (their site was lost)
            runs = {j.run_id for j in served}
            self.demand = {r: d for r, d in self.demand.items() if r in runs}
        free = dict(free_gpus)
        for job in sorted(served, key=lambda j: (-j.spec.priority, j.seq)):
            current = job.current_replicas
            sized_at = self.sized_at.setdefault(job.job_id, now)
            demand = self.demand.get(job.run_id, job.requests_per_s)
            plan = next_replicas(job.spec, current, demand, sized_at, self.low.get(job.job_id), now, self.policy)
            if plan.low is None:
                self.low.pop(job.job_id, None)
            else:
                self.low[job.job_id] = plan.low
            if plan.replicas <= current:
                self.growing.pop(job.job_id, None)
            if plan.replicas < current:
                self._resize(decision, job, plan.replicas, plan.reason, now, manages(job.site_id))
                continue
            wanted = within_gpus(current, plan.replicas, job.spec.resources.gpus, free.get(job.site_id, 0))
            if wanted <= current:
                self.growing.pop(job.job_id, None)  # no free GPUs at its site for more replicas
                continue
            free[job.site_id] = free.get(job.site_id, 0) - (wanted - current) * job.spec.resources.gpus
            if manages(job.site_id):
                self.growing[job.job_id] = wanted
                self.grow_why[job.job_id] = plan.reason
                to_dispatch.add(job.site_id)  # dispatch reserves the power, then scales
            else:
                self._resize(decision, job, wanted, plan.reason, now, managed=False)
        return decision, to_dispatch
