"""Serve inference scaling in the scheduler shell: demand readings in, replicas out.

It owns what core/autoscale.py needs between readings and what the power keeper
must count while a size changes:

- per Serve job: the low-demand state and when its size was last set (memory; a
  restart only delays the next scale-down);
- scale-ups waiting for power (`growing`, power-managed sites): dispatch reserves
  their extra GPUs like a placed run's (make room first), and only once they fit
  does the job's new size get committed and a ScaleRun go to the agent;
- scale-downs the agent has not confirmed yet (`shrinking`): the job's size is
  committed at once, but the replicas it gives up are counted as stopping until
  the agent reports the run at or under its new size.

A site without power management scales on GPUs alone: up as far as free GPUs
allow, down at once. A size change is a committed job change (the job's
`replicas`), not a state transition: it writes no job event; it is logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from scheduler.core import runs
from scheduler.core.autoscale import LowDemand, ScalePolicy, next_replicas, within_gpus
from scheduler.core.decisions import Decision, ScaleRun
from scheduler.core.dispatch import SiteDispatch
from scheduler.core.jobs import Job, JobState
from scheduler.core.ledger import AiClaim, claim_for

if TYPE_CHECKING:
    from scheduler.server.controller import Controller

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Shrink:
    site_id: str
    job_id: str
    replicas: int  # the size ordered
    before: int  # the size it had: the difference still draws until confirmed


class ServeScaler:
    def __init__(self, controller: Controller, clock: Callable[[], float]):
        self.controller = controller
        self.clock = clock
        self.policy = ScalePolicy(controller.config.serve_cooldown_s)
        self.low: dict[str, LowDemand] = {}
        self.sized_at: dict[str, float] = {}  # job_id -> when its current size was set
        self.growing: dict[str, int] = {}  # job_id -> replicas wanted, waiting for power
        self.grow_why: dict[str, str] = {}  # job_id -> what its waiting scale-up is for
        self.waiting_reasons: dict[str, str] = {}  # job_id -> why its scale-up waits
        self.shrinking: dict[str, Shrink] = {}  # run_id -> a scale-down not yet confirmed

    # ------------------------------------------------------------- readings
    def observe(self, site_id: str, report: runs.RunReport) -> None:
        """An agent's report of a run: a scale-down is confirmed once the run is at or
        under its new size (the agent reports the larger of its target and what runs)."""
        shrink = self.shrinking.get(report.run_id)
        if shrink is None or shrink.site_id != site_id:
            return
        gone = report.state not in runs.RUN_ACTIVE
        if gone or (report.serve is not None and report.serve.replicas <= shrink.replicas):
            del self.shrinking[report.run_id]
            self.controller.power.request(site_id)

    # ------------------------------------------------------------- for the power keeper
    def growing_claims(self, site_id: str) -> tuple[AiClaim, ...]:
        """The extra GPUs of scale-ups waiting for power at a site."""
        claims = []
        for job_id, replicas in self.growing.items():
            job = self.controller.jobs.get(job_id)
            if job is None or job.site_id != site_id or job.state != JobState.RUNNING:
                continue
            extra = (replicas - job.current_replicas) * job.spec.resources.gpus
            if extra > 0:
                claims.append(dataclasses.replace(claim_for(job), gpus=extra, gpus_per_replica=0, min_gpus=0))
        return tuple(claims)

    def stopping_claims(self, site_id: str) -> list[AiClaim]:
        """Replicas ordered away but not yet confirmed gone: they still draw."""
        claims = []
        for shrink in self.shrinking.values():
            job = self.controller.jobs.get(shrink.job_id)
            if job is None or shrink.site_id != site_id:
                continue
            gpus = (shrink.before - shrink.replicas) * job.spec.resources.gpus
            claims.append(dataclasses.replace(claim_for(job), job_id=f"{job.job_id}:scaling-down", gpus=gpus, gpus_per_replica=0, min_gpus=0))
        return claims

    def apply_dispatch(self, site_id: str, out: SiteDispatch, decision: Decision, cause: str) -> None:
        """Scale-ups that fit now and scale-downs the ladder decided: new sizes in
        `decision` (committed by the keeper), their ScaleRun orders sent after the commit."""
        now = self.clock()
        jobs = self.controller.jobs
        for job_id in out.grow:
            job, replicas = jobs.get(job_id), self.growing.pop(job_id, 0)
            if job is not None and job.state == JobState.RUNNING and replicas > job.current_replicas:
                self.waiting_reasons.pop(job_id, None)
                self._resize(decision, job, replicas, self.grow_why.pop(job_id, "demand"), now)
        for job_id, gpus in out.shrink.items():
            job = jobs.get(job_id)
            per_replica = job.spec.resources.gpus if job is not None else 0
            if job is None or per_replica <= 0 or not job.spec.served:
                continue
            self.growing.pop(job_id, None)
            self._resize(decision, job, max(job.spec.replica_bounds[0], gpus // per_replica), f"power: {cause}", now)
        self.waiting_reasons.update(out.grow_reasons)

    # ------------------------------------------------------------- demand
    def _resize(self, decision: Decision, job: Job, replicas: int, why: str, now: float) -> Job:
        before = job.current_replicas
        job = decision.record(dataclasses.replace(job, replicas=replicas))
        decision.orders.append(ScaleRun(job.site_id, job.run_id, replicas, why))
        self.sized_at[job.job_id] = now
        self.low.pop(job.job_id, None)
        if replicas < before and self.controller.power.manages(job.site_id):
            previous = self.shrinking.get(job.run_id)
            self.shrinking[job.run_id] = Shrink(job.site_id, job.job_id, replicas, max(before, previous.before if previous else 0))
        log.info("job %s (%s): %d -> %d replicas: %s", job.job_id, job.site_id, before, replicas, why)
        return job

    def step(self) -> Decision:
        """One pass over every running Serve service: its size for its demand now."""
        now = self.clock()
        decision = Decision()
        served = [j for j in self.controller.jobs.values() if j.spec.served and j.state == JobState.RUNNING]
        live = {j.job_id for j in served}
        for table in (self.low, self.sized_at, self.growing, self.grow_why, self.waiting_reasons):
            for job_id in [k for k in table if k not in live]:
                del table[job_id]
        usage = self.controller.site_usage()
        free = {s.site_id: s.gpus_total - usage.get(s.site_id, (0, 0))[0] for s in self.controller.sites.values()}
        for job in sorted(served, key=lambda j: (-j.spec.priority, j.seq)):
            current = job.current_replicas
            sized_at = self.sized_at.setdefault(job.job_id, now)
            plan = next_replicas(job.spec, current, job.requests_per_s, sized_at, self.low.get(job.job_id), now, self.policy)
            if plan.low is None:
                self.low.pop(job.job_id, None)
            else:
                self.low[job.job_id] = plan.low
            if plan.replicas <= current:
                self.growing.pop(job.job_id, None)
                self.waiting_reasons.pop(job.job_id, None)
            if plan.replicas < current:
                self._resize(decision, job, plan.replicas, plan.reason, now)
                continue
            wanted = within_gpus(current, plan.replicas, job.spec.resources.gpus, free.get(job.site_id, 0))
            if wanted <= current:
                if plan.replicas > current:
                    self.waiting_reasons[job.job_id] = f"{plan.reason}; no free GPUs at {job.site_id}"
                    self.growing.pop(job.job_id, None)
                continue
            free[job.site_id] = free.get(job.site_id, 0) - (wanted - current) * job.spec.resources.gpus
            if self.controller.power.manages(job.site_id):
                self.growing[job.job_id] = wanted
                self.grow_why[job.job_id] = plan.reason
                self.controller.power.request(job.site_id)  # dispatch reserves the power, then scales
            else:
                self._resize(decision, job, wanted, plan.reason, now)
        return decision

    async def run(self) -> None:
        """Scale every `power_interval_s` (demand arrives with heartbeats)."""
        while True:
            await asyncio.sleep(self.controller.config.power_interval_s)
            try:
                decision = self.step()
                if decision:
                    await self.controller.apply(decision)
            except Exception:
                log.exception("serve scaling pass failed")
