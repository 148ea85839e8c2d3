"""Placement: which pending jobs go to which site, and why the others wait.

`place()` is pure. Jobs are taken by priority (higher first), then first come first
served (`seq`). A job needs all its GPUs on one site (a training gang, or every
replica of an inference service), in one of its allowed regions, on a site that
takes new work. Among the sites that fit, the one left with the fewest free GPUs
wins (best fit, which keeps big holes for big gangs), ties broken by site id.

A job that does not fit does not block smaller jobs behind it (best-effort FIFO,
as Kueue's BestEffortFIFO); each one that waits gets a reason a person can act on.
Power is the second resource: a site fits only if the meter power its AI runs
leave free (with mining down to its paused floor) covers the job's GPUs at load.
Among fitting sites the one where that power is worth least to mining goes first
(the marginal miner's profit per MWh there), then best fit by GPUs.

With a `QueuePolicy` (contracts and fair share, core/fair_share.py) the queue is taken in
its order instead, each job only in the regions it admits (a tenant past its burst limit
there is not), and the reason of a job that waits says where its tenant stands.

A job that fits nowhere may make room: placement asks the pass's `RoomMaker` (priority
preemption, core/priority.py; contract reclaim, core/reclaim.py) for a site
where stopping runs would let it start. A `Room` reserves the site's free GPUs and power
the job will use, so the jobs behind it do not take them while the runs stop. Each
waiting job's reason starts with how many jobs that could run where it can are still
ahead of it in the queue ("3 jobs ahead; ...": counted per set of allowed regions as the
queue is walked, so a long queue costs no more than one pass over it).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scheduler.core.jobs import Job, JobState


@dataclass(frozen=True)
class SiteCapacity:
    """What placement needs to know of one site."""

    site_id: str
    region: str
    gpus_total: int
    gpus_used: int
    accepts_work: bool = True
    unavailable_because: str = ""  # e.g. "drained", "disconnected"
    power_free_w: float = float("inf")  # meter power AI may still take (mining at its floor)
    power_per_gpu_w: float = 0.0  # meter power one more GPU at load adds
    mining_value_usd_per_mwh: float = 0.0  # what a MWh taken from mining here is worth to it
    # For contracts and fair share (core/contracts.py), filled for every managed site, full or not:
    gpu_w: float = 0.0  # meter power one GPU at load adds (power_per_gpu_w is 0 where placement will not look)
    overhead: float = 1.0  # the site's facility factor: IT power = meter power / overhead
    ai_power_w: float = float("inf")  # meter power all its AI could draw under the interconnect cap, mining at its floor

    @property
    def gpus_free(self) -> int:
        return max(0, self.gpus_total - self.gpus_used)


@dataclass(frozen=True)
class Placement:
    assignments: tuple[tuple[str, str], ...] = ()  # (job_id, site_id), in decision order
    pending_reasons: dict[str, str] = field(default_factory=dict)  # job_id -> why it waits


@dataclass(frozen=True)
class Room:
    """Room a waiting job will have on one site once runs stop: what it takes now of the
    site's free GPUs and power (reserved for it), and the reason it waits."""

    site_id: str
    gpus: int
    power_w: float
    reason: str


class QueuePolicy(Protocol):
    """How a pass orders the queue and which regions each job may use now (contracts and fair
    share, core/fair_share.py); without one, placement takes `queue_order` and every region."""

    def order(self, pending: Iterable[Job]) -> Iterable[Job]:
        """The pending jobs in the order placement considers them (may be lazy: `placed` between)."""
        ...

    def admit(self, job: Job, regions: Sequence[str]) -> Sequence[str]:
        """The regions (of `regions`) the job may use now."""
        ...

    def standing(self, job: Job, regions: Sequence[str]) -> str:
        """Where its tenant stands, for the reason a job waits ("": nothing to say)."""
        ...

    def shape(self, job: Job) -> Hashable:
        """What, beyond GPUs, regions and priority, makes two jobs' answers differ (e.g. the tenant)."""
        ...

    def placed(self, job: Job, site: SiteCapacity) -> None:
        """The job was placed (or given room) on the site: its tenant now uses it."""
        ...


def run_watts(job: Job, site: SiteCapacity) -> float:
    """The meter power a run draws on a site (its GPUs at load, at its power fraction)."""
    return job.total_gpus * site.power_per_gpu_w * job.power_fraction


def without_unneeded(chosen: list[Job], site: SiteCapacity, gpus: int, watts: float, need: int, need_w: float) -> tuple[int, float]:
    """Put back, newest choice first (the last stays), the victims a later, larger one made
    unneeded: removes them from `chosen` and returns the GPUs and watts still freed."""
    for victim in reversed(chosen[:-1]):
        if gpus - victim.total_gpus >= need and watts - run_watts(victim, site) >= need_w:
            chosen.remove(victim)
            gpus, watts = gpus - victim.total_gpus, watts - run_watts(victim, site)
    return gpus, watts


def room_after_stops(job: Job, site: SiteCapacity, stops: Sequence[Job], free: dict[str, int], power: dict[str, float], reason: str) -> Room:
    """The Room `job` reserves on `site` while `stops` (runs stopping for it) free theirs:
    the part of its GPUs and power they do not cover, out of what the site has free now."""
    need = job.spec.total_gpus
    freed, freed_w = sum(j.total_gpus for j in stops), sum(run_watts(j, site) for j in stops)
    return Room(
        site.site_id,
        max(0, min(free[site.site_id], need - freed)),
        max(0.0, min(power[site.site_id], need * site.power_per_gpu_w - freed_w)),
        reason,
    )


class RoomMaker(Protocol):
    def room(self, job: Job, candidates: Sequence[SiteCapacity], free: dict[str, int], power: dict[str, float]) -> Room | str:
        """A Room for a job that fits nowhere, or why none can be made ("": nothing to add)."""
        ...

    def stopping_for(self, job_id: str) -> bool:
        """Whether runs are stopping to make room for this job (its look is its own, not its shape's)."""
        ...


def queue_order(jobs: Iterable[Job]) -> list[Job]:
    """Pending jobs in the order placement considers them."""
    return sorted((j for j in jobs if j.state == JobState.PENDING), key=lambda j: (-j.spec.priority, j.seq))


def _regions_text(job: Job) -> str:
    regions = job.spec.allowed_regions
    if not regions:
        return "any region"
    return ("region " if len(regions) == 1 else "regions ") + ", ".join(regions)


def _why_waiting(job: Job, candidates: Sequence[SiteCapacity], free: dict[str, int], power: dict[str, float]) -> str:
    need = job.spec.total_gpus
    where = _regions_text(job)
    if not candidates:
        return f"no site in {where}"
    if all(s.gpus_total < need for s in candidates):
        biggest = max(s.gpus_total for s in candidates)
        return f"no site in {where} has {need} GPUs in all (largest has {biggest})"
    details = []
    gpus_short = False
    for site in sorted(candidates, key=lambda s: s.site_id)[:5]:
        if not site.accepts_work:
            details.append(f"{site.site_id}: {site.unavailable_because or 'unavailable'}")
        elif free[site.site_id] < need:
            gpus_short = True
            details.append(f"{site.site_id}: {free[site.site_id]} of {site.gpus_total} free")
        else:
            details.append(f"{site.site_id}: {power[site.site_id] / 1e6:.2f} MW free, needs {need * site.power_per_gpu_w / 1e6:.2f} MW")
    more = f", {len(candidates) - 5} more" if len(candidates) > 5 else ""
    missing = f"{need} free GPUs" if gpus_short or all(not s.accepts_work for s in candidates) else f"power for {need} GPUs"
    return f"no site in {where} has {missing} ({'; '.join(details)}{more})"


def _ahead_text(ahead: int) -> str:
    return f"{ahead} job{'s' if ahead != 1 else ''} ahead; " if ahead else ""


def place(pending: Iterable[Job], sites: Sequence[SiteCapacity], room_maker: RoomMaker | None = None, queue: QueuePolicy | None = None) -> Placement:
    """Decide placements for `pending` jobs given the sites' current capacity
    (`room_maker`: what a job that fits nowhere may ask for, e.g. priority preemption;
    `queue`: the order and the regions each job may use, e.g. contracts and fair share)."""
    free = {s.site_id: s.gpus_free for s in sites}
    power = {s.site_id: s.power_free_w for s in sites}
    by_region: dict[str, list[SiteCapacity]] = {}
    for site in sites:
        by_region.setdefault(site.region, []).append(site)
    assignments: list[tuple[str, str]] = []
    reasons: dict[str, str] = {}
    # (GPUs needed, regions, priority) that fit nowhere since the last assignment, with why: a
    # long queue of similar jobs costs one look per shape, not one per job, until capacity moves.
    fits_nowhere: dict[tuple[int, tuple[str, ...], int], str] = {}
    waiting: dict[tuple[str, ...], int] = {}  # allowed regions -> jobs still waiting, walked so far
    overlaps: dict[tuple[tuple[str, ...], tuple[str, ...]], bool] = {}
    for job in queue_order(pending) if queue is None else queue.order(pending):
        regions = job.spec.allowed_regions or tuple(by_region)
        need = job.spec.total_gpus
        key: tuple = (need, job.spec.allowed_regions, job.spec.priority)
        asked = regions
        if queue is not None:
            regions = queue.admit(job, regions)
            key = (*key, queue.shape(job))
        mine = job.spec.allowed_regions
        ahead = 0
        for theirs, count in waiting.items():
            shared = overlaps.get((mine, theirs))
            if shared is None:
                shared = overlaps[(mine, theirs)] = not mine or not theirs or bool(set(mine) & set(theirs))
            ahead += count if shared else 0
        own = room_maker is not None and room_maker.stopping_for(job.job_id)
        why = None if own else fits_nowhere.get(key)
        if why is None:
            candidates = [s for r in regions for s in by_region.get(r, ())]
            fits = [s for s in candidates if s.accepts_work and free[s.site_id] >= need and power[s.site_id] >= need * s.power_per_gpu_w]
            if fits:
                best = min(fits, key=lambda s: (s.mining_value_usd_per_mwh, free[s.site_id] - need, s.site_id))
                free[best.site_id] -= need
                power[best.site_id] -= need * best.power_per_gpu_w
                assignments.append((job.job_id, best.site_id))
                fits_nowhere.clear()  # capacity moved: the reasons' figures (GPUs and MW free) change
                if queue is not None:
                    queue.placed(job, best)
                continue
            standing = queue.standing(job, asked) if queue is not None else ""
            why = _why_waiting(job, candidates, free, power) if candidates or not standing else ""
            why = "; ".join(part for part in (standing, why) if part)
            room = room_maker.room(job, candidates, free, power) if room_maker is not None and candidates else ""
            if isinstance(room, Room):
                free[room.site_id] -= room.gpus
                power[room.site_id] -= room.power_w
                fits_nowhere.clear()
                why = room.reason
                if queue is not None:
                    queue.placed(job, next(s for s in candidates if s.site_id == room.site_id))
            else:
                why = f"{why}; {room}" if room else why
                if not own:
                    fits_nowhere[key] = why
        reasons[job.job_id] = _ahead_text(ahead) + why
        waiting[mine] = waiting.get(mine, 0) + 1
    return Placement(tuple(assignments), reasons)
