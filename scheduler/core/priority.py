"""Priority preemption: which lower-priority training runs stop so that a waiting job can
start, and the scheduling pass that places jobs and carries those stops out.

Owns `PreemptionPolicy` (the scheduler config's `preemption:`), `PriorityRoom` (the
RoomMaker placement consults, per pass, for a job that fits on no site) and
`schedule_pass` (placement, core.runs.schedule, core.runs.preempt of each victim), which
the controller and the simulator both call. Pure: jobs and `now` in, a Decision out.

The rules:
- Only a job that fits on no site (GPUs or power) makes room, and only on a site that
  could hold it in all: in its regions, taking work, with as many GPUs in all.
- Victims are RUNNING training runs of a priority at least `priority_gap` below the
  job's. Inference is never a victim (of training or of anything placement makes room
  for); neither is a run still starting (nothing to gain: it would start elsewhere).
- Bounded: a run is not preempted for priority within `min_run_s` of its start (so one
  job is stopped at most once per `min_run_s` of running). No thrash: a victim is of a
  lower priority by at least the gap, so once requeued it never preempts back.
- On a site, victims are taken lowest priority first, then the ones that lose least
  work (time since their last checkpoint, or since their start without one), then the
  newest, until the site's free GPUs and power, what runs already stopping for this job
  free, and the victims' cover the job; victims not needed after all are put back.
  Among sites, the one needing no new stop wins, then the lowest highest victim
  priority, fewest victims, least work lost, site id.
- Each victim is preempted with its checkpoint grace (core.runs.preempt): PREEMPTED,
  `preempted_for` the job's id, its event reading "preempted for higher-priority job
  X ..."; once its agent confirms it gone it is PENDING again and resumes from its
  checkpoint. The decision counts each under the cause "priority".
- Reservation: the waiting job takes (placement subtracts) the free GPUs and power it
  will use on that site, so the jobs behind it do not; on later passes the runs
  stopping for it (PREEMPTED with its id, persisted with the job) count as room coming
  to it, so no new victim is taken while they suffice. A restart rebuilds this from the
  jobs alone.

Cheap on a long queue: placement asks only for jobs that fit nowhere, once per shape
(GPUs, regions, priority) until capacity moves; a site's candidate runs are read and
sorted once per pass, the first time a job could use that site.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scheduler.core import runs
from scheduler.core.contracts import Book, TenancyPolicy
from scheduler.core.decisions import Decision
from scheduler.core.fair_share import FairQueue
from scheduler.core.jobs import Job, JobKind, JobState
from scheduler.core.placement import Room, SiteCapacity, place, room_after_stops, run_watts, without_unneeded
from scheduler.core.reclaim import ContractRoom, TenancyRoom

CAUSE = "priority"


@dataclass(frozen=True)
class PreemptionPolicy:
    enabled: bool = True
    min_run_s: float = 600.0  # a run is not preempted for priority within this of its start
    priority_gap: int = 1  # a job preempts only runs at least this much lower in priority


@dataclass
class _SiteRuns:
    """One site's runs as victims: those that may be stopped now, in victim order; those
    still inside min_run_s (when they may be); what runs stopping for a job free."""

    ready: list[Job] = field(default_factory=list)
    young: dict[int, list[float]] = field(default_factory=dict)  # priority -> [GPUs, GPU count x fraction, last may-preempt time]
    stopping: dict[str, list[Job]] = field(default_factory=dict)  # job id -> runs PREEMPTED for it


class PriorityRoom:
    """The pass's RoomMaker: plans stops for jobs that fit nowhere and keeps them."""

    def __init__(
        self,
        policy: PreemptionPolicy,
        runs_on: Callable[[str], Iterable[Job]],
        now: float,
        may_stop: Callable[[Job, Job], bool] | None = None,
        taken: set[str] | None = None,
    ):
        self.policy, self.runs_on, self.now = policy, runs_on, now
        self.may_stop = may_stop  # (victim, job): whether the job may stop that run (contracts: core/reclaim.py)
        self.taken = taken if taken is not None else set()  # runs chosen as victims this pass, by any RoomMaker
        self._sites: dict[str, _SiteRuns] = {}
        self._stopping: set[str] = set()  # jobs runs stop for, on the sites read so far
        self.victims: list[tuple[Job, Job]] = []  # (victim, the job it makes room for), in decision order

    def _site(self, site_id: str) -> _SiteRuns:
        site = self._sites.get(site_id)
        if site is None:
            site = self._sites[site_id] = _SiteRuns()
            earliest = self.now - self.policy.min_run_s
            for job in self.runs_on(site_id):
                if job.state == JobState.PREEMPTED and job.preempted_for:
                    site.stopping.setdefault(job.preempted_for, []).append(job)
                elif job.state == JobState.RUNNING and job.spec.kind == JobKind.TRAINING:
                    if job.started_at <= earliest:
                        site.ready.append(job)
                    else:
                        held = site.young.setdefault(job.spec.priority, [0.0, 0.0, 0.0])
                        held[0] += job.total_gpus
                        held[1] += job.total_gpus * job.power_fraction
                        held[2] = max(held[2], job.started_at + self.policy.min_run_s)
            self._stopping.update(site.stopping)
            site.ready.sort(key=lambda j: (j.spec.priority, runs.lost_s(j, self.now), -j.started_at, j.job_id))
        return site

    def stopping_for(self, job_id: str) -> bool:
        """Exact where it matters: placement reuses a shape's answer only after this looked at
        every site the shape could use (and so read the runs stopping there)."""
        return job_id in self._stopping

    def room(self, job: Job, candidates: Sequence[SiteCapacity], free: dict[str, int], power: dict[str, float]) -> Room | str:
        need, limit = job.spec.total_gpus, job.spec.priority - self.policy.priority_gap
        best: tuple[tuple, SiteCapacity, list[Job], list[Job]] | None = None
        soonest: float | None = None  # when runs still inside min_run_s would make room
        for site in candidates:
            if not site.accepts_work or site.gpus_total < need:
                continue
            runs_there = self._site(site.site_id)
            stopping = runs_there.stopping.get(job.job_id, [])
            need_w = need * site.power_per_gpu_w
            gpus = free[site.site_id] + sum(j.total_gpus for j in stopping)
            watts = power[site.site_id] + sum(run_watts(j, site) for j in stopping)
            chosen: list[Job] = []
            for victim in runs_there.ready:
                if (gpus >= need and watts >= need_w) or victim.spec.priority > limit:
                    break
                if victim.job_id in self.taken or (self.may_stop is not None and not self.may_stop(victim, job)):
                    continue
                chosen.append(victim)
                gpus, watts = gpus + victim.total_gpus, watts + run_watts(victim, site)
            if gpus < need or watts < need_w:
                # Runs inside min_run_s, by priority (a sum per priority: no look at each run per job).
                latest = 0.0
                for priority, (held, fraction_gpus, at) in sorted(runs_there.young.items()):
                    if priority > limit:
                        break
                    gpus, watts, latest = gpus + held, watts + fraction_gpus * site.power_per_gpu_w, max(latest, at)
                    if gpus >= need and watts >= need_w:
                        soonest = latest if soonest is None else min(soonest, latest)
                        break
                continue
            gpus, watts = without_unneeded(chosen, site, gpus, watts, need, need_w)
            cost = (
                bool(chosen),
                max((v.spec.priority for v in chosen), default=0),
                len(chosen),
                sum(runs.lost_s(v, self.now) * v.total_gpus for v in chosen),
                site.site_id,
            )
            if best is None or cost < best[0]:
                best = (cost, site, chosen, stopping)
        if best is None:
            if soonest is None:
                return ""
            return f"lower-priority runs cannot be preempted yet (min run time {self.policy.min_run_s:g} s; within {max(0.0, soonest - self.now):.0f} s)"
        _, site, chosen, stopping = best
        runs_there = self._site(site.site_id)
        for victim in chosen:
            runs_there.ready.remove(victim)
            self.taken.add(victim.job_id)
            self.victims.append((victim, job))
        runs_there.stopping[job.job_id] = [*stopping, *chosen]
        self._stopping.add(job.job_id)
        stops = runs_there.stopping[job.job_id]
        grace = max((j.spec.checkpoint_grace_s for j in stops), default=0)
        where = f"{site.site_id} ({site.region})"
        reason = f"waiting for {need} GPUs on {where}: preempting {len(stops)} lower-priority run{'s' if len(stops) != 1 else ''} (grace {grace} s)"
        return room_after_stops(job, site, stops, free, power, reason)

    def preempt(self, now: float) -> Decision:
        """Stop the victims chosen this pass, each with its checkpoint grace."""
        decision = Decision()
        for victim, job in self.victims:
            why = f"preempted for higher-priority job {job.job_id} (priority {job.spec.priority} over {victim.spec.priority})"
            decision.extend(runs.preempt_for(victim, job, why, now, CAUSE))
        return decision


def schedule_pass(
    pending: Sequence[Job],
    capacities: Sequence[SiteCapacity],
    jobs: Mapping[str, Job],
    runs_on: Callable[[str], Iterable[Job]],
    policy: PreemptionPolicy,
    now: float,
    tenancy: TenancyPolicy | None = None,
) -> Decision:
    """One scheduling pass: placement (making room by priority under `policy`), the jobs
    placed SCHEDULED with their start orders, the reasons the others wait, the victims'
    stops. `runs_on(site)`: the site's active runs (read only for the sites a job that
    fits nowhere could use, unless `tenancy` has contracts or weights: then every site's,
    for each tenant's use). With `tenancy` the queue is in fair-share order (core/fair_share.py)
    and a firm claim reclaims borrowed runs before priority preempts (core/reclaim.py)."""
    if tenancy is None or not tenancy.enabled or not pending:
        room = PriorityRoom(policy, runs_on, now) if policy.enabled and pending else None
        placement = place(pending, capacities, room)
        decision = runs.schedule(placement.assignments, placement.pending_reasons, jobs, now)
        if room is not None:
            decision.extend(room.preempt(now))
        return decision
    book = Book(tenancy, capacities, (j for s in capacities for j in runs_on(s.site_id)))
    taken: set[str] = set()
    reclaim = ContractRoom(tenancy, book, policy.min_run_s, runs_on, now, taken)
    both = TenancyRoom(reclaim, None)
    if policy.enabled:
        both.priority = priority = PriorityRoom(policy, runs_on, now, both.may_stop, taken)
    placement = place(pending, capacities, both, FairQueue(book))
    decision = runs.schedule(placement.assignments, placement.pending_reasons, jobs, now)
    decision.extend(reclaim.preempt(now))
    if policy.enabled:
        decision.extend(priority.preempt(now))
    return decision


__all__ = ["CAUSE", "PreemptionPolicy", "PriorityRoom", "schedule_pass"]
