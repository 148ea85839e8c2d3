"""Contract reclaim: a job within its tenant's firm share that fits nowhere gets room by
stopping other tenants' *borrowed* runs (core/contracts.py) in a region where it is firm.

`ContractRoom` is a RoomMaker (core/placement.py), composed before priority preemption
(`TenancyRoom`: reclaim first, then priority). The rules:
- Victims are RUNNING training runs of other tenants that are borrowed (beyond their
  tenant's firm share in that region), on one site that could hold the job. Inference is
  never a victim of reclaim (a tenant's inference fills its firm share first, so it is
  borrowed only if the tenant runs more inference than its contract: it then keeps
  running, and the claim takes training or waits). Neither is a run still starting.
- Order on a site: runs of an interruptible-class contract first, then the tenant with the
  largest dominant share, then the runs losing the least work, then the newest; but when
  one run of the class that goes first covers the claim alone, the smallest such run (a
  larger one would leave GPUs idle beside the claim and come back whole). Only as many as
  needed (GPUs and power); among sites, the one needing no new stop wins, then
  the fewest stops, the least work lost, the site id.
- Checkpoint-aware: each is preempted with its checkpoint grace (core.runs.preempt), at
  most reclaim_grace_s / 2; its event reads "reclaimed by tenant X's contract for job J
  ...", `preempted_for` J, counted under the cause "contract". While the victims stop, the
  job keeps the site's free GPUs and power it will use (a Room) and no new victim is taken.
- Bounded, and a firm claim is met in time: a borrowed run is reclaimable once it has run
  min(min_run_s, reclaim_grace_s / 2). While the borrowed runs a claim needs are younger
  than that, the claim already keeps the site's free GPUs and power (nothing new borrows
  them), so it is met within reclaim_grace_s of the first pass it could be (protection
  <= grace / 2, then checkpoint grace <= grace / 2), plus a pass.
- No thrash: a reclaimed run was borrowed, so its tenant is over its firm share in that
  region; requeued, it is not within its firm share there and cannot reclaim back.

Under contracts or weights, priority preemption keeps to what a tenant may take
(`TenancyRoom.may_stop`): only a job within its tenant's firm share preempts: its own
tenant's lower-priority runs (a service within the share its tenant's services leave may
displace the tenant's training), or, strictly within the share, other tenants' borrowed
runs; never another tenant's firm runs. A job that would borrow preempts nothing: once the
runs were gone it would not be first for their room (the fair-share order puts firm
claims and lower shares first), so stopping them would only churn. With weights and no
contracts (no firm shares), a job preempts its own tenant's lower-priority runs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from scheduler.core import runs
from scheduler.core.contracts import INTERRUPTIBLE, Book, TenancyPolicy
from scheduler.core.decisions import Decision
from scheduler.core.jobs import Job, JobKind, JobState
from scheduler.core.placement import Room, RoomMaker, SiteCapacity, room_after_stops, run_watts, without_unneeded

CAUSE = "contract"
REASON = "reclaimed by "  # how a reclaimed run's event begins (the runs stopping for a claim tell reclaim from priority by it)


@dataclass
class _SiteRuns:
    ready: list[Job] = field(default_factory=list)  # borrowed training that may be reclaimed now, in victim order
    young: list[Job] = field(default_factory=list)  # borrowed training still inside the reclaim min run
    stopping: dict[str, list[Job]] = field(default_factory=dict)  # job id -> runs PREEMPTED for it


class ContractRoom:
    def __init__(self, policy: TenancyPolicy, book: Book, min_run_s: float, runs_on: Callable[[str], Iterable[Job]], now: float, taken: set[str]):
        self.policy, self.book, self.runs_on, self.now = policy, book, runs_on, now
        self.min_run_s = min(min_run_s, policy.reclaim_grace_s / 2)
        self.max_grace_s = policy.reclaim_grace_s / 2
        self.taken = taken  # runs chosen as victims this pass, by any RoomMaker
        self._sites: dict[str, _SiteRuns] = {}
        self._stopping: set[str] = set()
        self._interruptible: set[str] = set()  # runs of an interruptible-class contract, on the sites read
        self.victims: list[tuple[Job, Job]] = []

    def _site(self, site: SiteCapacity) -> _SiteRuns:
        found = self._sites.get(site.site_id)
        if found is None:
            found = self._sites[site.site_id] = _SiteRuns()
            for job in self.runs_on(site.site_id):
                if job.state == JobState.PREEMPTED and job.preempted_for:
                    found.stopping.setdefault(job.preempted_for, []).append(job)
                elif job.state == JobState.RUNNING and job.spec.kind == JobKind.TRAINING and job.job_id in self.book.borrowed:
                    (found.ready if job.started_at <= self.now - self.min_run_s else found.young).append(job)
            self._stopping.update(found.stopping)

            for j in found.ready:
                contract = self.policy.contract(j.tenant, site.region)
                if contract is not None and contract.service_class == INTERRUPTIBLE:
                    self._interruptible.add(j.job_id)

            def order(j: Job) -> tuple:
                return (j.job_id not in self._interruptible, -self.book.share(j.tenant, (site.region,)), runs.lost_s(j, self.now), -j.started_at, j.job_id)

            found.ready.sort(key=order)
        return found

    def stopping_for(self, job_id: str) -> bool:
        return job_id in self._stopping

    def room(self, job: Job, candidates: Sequence[SiteCapacity], free: dict[str, int], power: dict[str, float]) -> Room | str:
        firm = set(self.book.firm_regions(job, tuple({s.region for s in candidates}), strict=True))
        if not firm and job.job_id not in self._stopping:
            return ""
        need = job.spec.total_gpus
        best: tuple[tuple, SiteCapacity, list[Job], list[Job]] | None = None
        wait: tuple[float, SiteCapacity, list[Job]] | None = None  # (when, site, stopping): young borrowed runs would do
        for site in candidates:
            if not site.accepts_work or site.gpus_total < need:
                continue
            there = self._site(site)
            stopping = there.stopping.get(job.job_id, [])
            if site.region not in firm and not stopping:
                continue
            need_w = need * site.power_per_gpu_w
            gpus = free[site.site_id] + sum(j.total_gpus for j in stopping)
            watts = power[site.site_id] + sum(run_watts(j, site) for j in stopping)
            chosen: list[Job] = []
            if site.region in firm and (gpus < need or watts < need_w):
                short, short_w = need - gpus, need_w - watts
                allowed = [v for v in there.ready if v.tenant != job.tenant and v.job_id not in self.taken]
                # The smallest run that covers the claim alone, of the class that goes first (no GPUs left idle
                # beside the claim for a run requeued whole); else in victim order.
                first = allowed[0].job_id in self._interruptible if allowed else False
                alone = [v for v in allowed if v.total_gpus >= short and run_watts(v, site) >= short_w and (v.job_id in self._interruptible) == first]
                for victim in [min(alone, key=lambda v: v.total_gpus)] if alone else allowed:
                    if gpus >= need and watts >= need_w:
                        break
                    chosen.append(victim)
                    gpus, watts = gpus + victim.total_gpus, watts + run_watts(victim, site)
            if gpus < need or watts < need_w:
                latest = 0.0
                for young in sorted(there.young, key=lambda j: j.started_at) if site.region in firm else ():
                    if young.tenant == job.tenant or young.job_id in self.taken:
                        continue
                    gpus, watts, latest = gpus + young.total_gpus, watts + run_watts(young, site), young.started_at + self.min_run_s
                    if gpus >= need and watts >= need_w:
                        if wait is None or latest < wait[0]:
                            wait = (latest, site, stopping)
                        break
                continue
            gpus, watts = without_unneeded(chosen, site, gpus, watts, need, need_w)
            cost = (bool(chosen), len(chosen), sum(runs.lost_s(v, self.now) * v.total_gpus for v in chosen), site.site_id)
            if best is None or cost < best[0]:
                best = (cost, site, chosen, stopping)
        where = f"tenant {job.tenant}'s contract"
        if best is None:
            if wait is None:
                return f"no borrowed runs to reclaim for {where}" if firm else ""
            when, site, stopping = wait
            reason = f"waiting for {need} GPUs on {site.site_id} ({site.region}) for {where}: borrowed runs there are reclaimable within {max(0.0, when - self.now):.0f} s"
            return room_after_stops(job, site, stopping, free, power, reason)
        _, site, chosen, stopping = best
        there = self._site(site)
        for victim in chosen:
            there.ready.remove(victim)
            self.taken.add(victim.job_id)
            self.victims.append((victim, job))
        stops = there.stopping[job.job_id] = [*stopping, *chosen]
        self._stopping.add(job.job_id)
        grace = max((min(j.spec.checkpoint_grace_s, int(self.max_grace_s)) for j in stops), default=0)
        reclaimed = len(chosen) + sum(j.reason.startswith(REASON) for j in stopping)  # the others: stopped for priority
        what = [f"reclaiming {reclaimed} borrowed run{'s' if reclaimed != 1 else ''} for {where}"] if reclaimed else []
        if len(stops) > reclaimed:
            what.append(f"preempting {len(stops) - reclaimed} lower-priority run{'s' if len(stops) - reclaimed != 1 else ''}")
        reason = f"waiting for {need} GPUs on {site.site_id} ({site.region}): {' and '.join(what)} (grace {grace} s)"
        return room_after_stops(job, site, stops, free, power, reason)

    def preempt(self, now: float) -> Decision:
        """Stop the victims chosen this pass, each with its checkpoint grace (at most reclaim_grace_s / 2)."""
        decision = Decision()
        for victim, job in self.victims:
            region = self.book.sites[victim.site_id].region if victim.site_id in self.book.sites else "its region"
            why = f"{REASON}tenant {job.tenant}'s contract for job {job.job_id} (borrowed beyond tenant {victim.tenant}'s firm share in {region})"
            decision.extend(runs.preempt_for(victim, job, why, now, CAUSE, self.max_grace_s))
        return decision


class TenancyRoom:
    """Reclaim first, then priority: the pass's RoomMaker under contracts. `may_stop` is the
    priority RoomMaker's filter (no other tenant's firm run; no run already chosen)."""

    def __init__(self, reclaim: ContractRoom, priority: RoomMaker | None):
        self.reclaim, self.priority = reclaim, priority

    def may_stop(self, victim: Job, job: Job) -> bool:
        if victim.job_id in self.reclaim.taken:
            return False
        if not self.reclaim.policy.contracts:  # weights alone: no firm shares, a tenant preempts its own runs only
            return victim.tenant == job.tenant
        if victim.tenant == job.tenant:
            return bool(self.reclaim.book.firm_regions(job))
        return victim.job_id in self.reclaim.book.borrowed and bool(self.reclaim.book.firm_regions(job, strict=True))

    def stopping_for(self, job_id: str) -> bool:
        return self.reclaim.stopping_for(job_id) or (self.priority is not None and self.priority.stopping_for(job_id))

    def room(self, job: Job, candidates: Sequence[SiteCapacity], free: dict[str, int], power: dict[str, float]) -> Room | str:
        first = self.reclaim.room(job, candidates, free, power)
        if isinstance(first, Room) or self.priority is None:
            return first
        second = self.priority.room(job, candidates, free, power)
        if isinstance(second, Room):
            return second
        return "; ".join(part for part in (first, second) if part)


__all__ = ["CAUSE", "ContractRoom", "TenancyRoom"]
