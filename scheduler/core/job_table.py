"""The jobs the scheduler knows, indexed the way its decisions read them.

A mapping job_id -> Job (the newest version) that keeps three indexes up to date on
every write, so that no pass scans every job ever submitted:
- the active runs of each site (states in `jobs.ACTIVE`, by `site_id`), and the GPUs
  they hold in all (kept as a sum: `gpus_in_use` reads it without a scan);
- the PENDING jobs (the scheduling queue);
- the RUNNING Serve services (what the scaler sizes).

Pure: plain dictionaries and sets. The scheduler's controller and the simulator both
keep their jobs in one. The controller keeps only active and recent jobs: older finished
ones are `evict`ed (their counts stay) and read from the store when asked for.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Mapping

from scheduler.core.decisions import Decision
from scheduler.core.jobs import ACTIVE, Job, JobState


class JobTable(Mapping[str, Job]):
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._on_site: dict[str, dict[str, None]] = {}  # site_id -> active job ids, in insertion order
        self._gpus: dict[str, int] = {}  # site_id -> sum of total_gpus of its active jobs
        self._pending: dict[str, None] = {}
        self._served: dict[str, None] = {}
        self._counts: collections.Counter = collections.Counter()  # (state, tenant) -> jobs

    # ------------------------------------------------------------- the mapping
    def __getitem__(self, job_id: str) -> Job:
        return self._jobs[job_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __setitem__(self, job_id: str, job: Job) -> None:
        old = self._jobs.get(job_id)
        self._jobs[job_id] = job
        if old is not None:
            self._counts[(old.state, old.tenant)] -= 1
        self._counts[(job.state, job.tenant)] += 1
        if old is not None and old.state in ACTIVE:
            self._gpus[old.site_id] -= old.total_gpus
        if old is not None and (old.site_id, old.state in ACTIVE) != (job.site_id, job.state in ACTIVE):
            self._on_site.get(old.site_id, {}).pop(job_id, None)
        if job.state in ACTIVE:
            self._on_site.setdefault(job.site_id, {})[job_id] = None
            self._gpus[job.site_id] = self._gpus.get(job.site_id, 0) + job.total_gpus
        self._toggle(self._pending, job_id, job.state == JobState.PENDING)
        self._toggle(self._served, job_id, job.spec.served and job.state == JobState.RUNNING)

    def discard(self, job_id: str) -> None:
        """Forget a job (a simulation drops finished ones; the scheduler keeps every job)."""
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self._counts[(job.state, job.tenant)] -= 1
            if job.state in ACTIVE:
                self._gpus[job.site_id] -= job.total_gpus
            self._on_site.get(job.site_id, {}).pop(job_id, None)
            self._pending.pop(job_id, None)
            self._served.pop(job_id, None)

    def evict(self, job_id: str) -> None:
        """Drop a finished job from memory but keep it in `counts` (it is still in the store)."""
        job = self._jobs[job_id]
        if job.state in ACTIVE or job.state == JobState.PENDING:
            raise ValueError(f"job {job_id} is {job.state.name}: only finished jobs leave memory")
        self.discard(job_id)
        self._counts[(job.state, job.tenant)] += 1

    def count_elsewhere(self, counts: Mapping[tuple[JobState, str], int]) -> None:
        """Count jobs kept only in the store (a bounded snapshot's `paged_out`)."""
        self._counts.update(counts)

    def take(self, decision: Decision) -> None:
        """A decision's new job versions, and the reasons PENDING jobs wait (derived: never
        persisted). The controller and the simulator apply decisions to memory with this."""
        for job in decision.jobs:
            self[job.job_id] = job
        for job_id, reason in decision.pending_reasons.items():
            job = self._jobs[job_id]
            if job.state == JobState.PENDING:
                self[job_id] = dataclasses.replace(job, pending_reason=reason)

    def put(self, job: Job) -> Job:
        self[job.job_id] = job
        return job

    @staticmethod
    def _toggle(index: dict[str, None], job_id: str, member: bool) -> None:
        if member:
            index[job_id] = None
        else:
            index.pop(job_id, None)

    # ------------------------------------------------------------- the indexes
    def on_site(self, site_id: str) -> list[Job]:
        """The site's active runs (SCHEDULED, STARTING, RUNNING, CANCELLING, PREEMPTED)."""
        return [self._jobs[j] for j in self._on_site.get(site_id, ())]

    def active(self) -> list[Job]:
        """Every active run, on every site."""
        return [self._jobs[j] for ids in self._on_site.values() for j in ids]

    def pending(self) -> list[Job]:
        return [self._jobs[j] for j in self._pending]

    def served_running(self) -> list[Job]:
        return [self._jobs[j] for j in self._served]

    def counts(self) -> dict[tuple[JobState, str], int]:
        """Jobs by (state, tenant), in memory or not, kept as jobs change (the metrics read it at each scrape)."""
        return {key: n for key, n in self._counts.items() if n}

    def gpus_in_use(self) -> dict[str, tuple[int, int]]:
        """site_id -> (GPUs its active runs hold, how many runs)."""
        return {site: (self._gpus[site], len(ids)) for site, ids in self._on_site.items() if ids}
