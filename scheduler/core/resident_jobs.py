"""The jobs a scheduler keeps in memory, and the rule for which finished jobs leave it.

Memory holds every unfinished job and every job among the newest `recent` submissions
(seq above `floor`); a finished job at or below the floor, written to the store, is
evicted (its count stays in the table). Once any job was evicted (`paged`), a lookup
that misses memory must ask the store, and a tenant's listing below the floor merges
the store's jobs with the ones still in memory (`merge_page`): memory's version of a
job wins, since it may be ahead of the store by one commit.

Pure: the controller carries reads to and from the store; this module decides.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable

from scheduler.core.job_table import JobTable
from scheduler.core.jobs import Job, JobState


class ResidentJobs:
    def __init__(self, recent: int):
        self.recent = recent
        self.table = JobTable()
        self.by_request: dict[tuple[str, str], str] = {}
        self.tenant_seqs: dict[str, list[int]] = collections.defaultdict(list)  # ascending seqs per tenant, in memory
        self.seq_to_job: dict[int, str] = {}
        self.seq = 0  # the newest submission's
        self.paged = False  # some jobs are only in the store
        self.unsaved: collections.Counter[str] = collections.Counter()  # job_id -> decisions changing it not yet committed

    @property
    def floor(self) -> int:
        """Finished jobs with a seq at or below this may leave memory."""
        return self.seq - self.recent

    def add(self, job: Job) -> None:
        """A new job, or a newer version of one in memory."""
        if job.job_id not in self.table:
            self.by_request[(job.tenant, job.client_request_id)] = job.job_id
            bisect.insort(self.tenant_seqs[job.tenant], job.seq)
            self.seq_to_job[job.seq] = job.job_id
        self.table[job.job_id] = job
        self.seq = max(self.seq, job.seq)

    def next_seq(self) -> int:
        """Number a new submission; the job that falls to the floor may leave memory."""
        self.seq += 1
        fell = self.seq_to_job.get(self.floor)
        if fell is not None:
            self.evict((fell,))
        return self.seq

    def passed_floor(self, old_floor: int) -> list[str]:
        """Jobs in memory the floor passed since it was `old_floor` (a standby catching up)."""
        return [self.seq_to_job[s] for s in range(max(old_floor + 1, 1), self.floor + 1) if s in self.seq_to_job]

    def evict(self, job_ids: Iterable[str]) -> int:
        """Drop those of `job_ids` that are finished, committed and at or below the floor."""
        floor, gone = self.floor, 0
        for job_id in job_ids:
            job = self.table.get(job_id)
            if job is None or not job.is_terminal or job.seq > floor or self.unsaved[job_id]:
                continue
            self.table.evict(job_id)
            del self.by_request[(job.tenant, job.client_request_id)]
            seqs = self.tenant_seqs[job.tenant]
            del seqs[bisect.bisect_left(seqs, job.seq)]
            del self.seq_to_job[job.seq]
            self.paged = True
            gone += 1
        return gone

    def saving(self, jobs: Iterable[Job], delta: int) -> None:
        """Count a decision's jobs as being committed (+1) or committed (-1)."""
        for job in jobs:
            self.unsaved[job.job_id] += delta
            if not self.unsaved[job.job_id]:
                del self.unsaved[job.job_id]

    # ------------------------------------------------------------- a tenant's jobs, newest first
    def newest_first(self, tenant: str, before: int, states: frozenset[JobState], limit: int, hidden: frozenset[str] | set[str]) -> tuple[list[Job], bool]:
        """From memory: the tenant's jobs with seq below `before`, newest first, down to
        where memory stops being complete (the floor, once jobs were paged out); and
        whether memory (or the store) may hold more below the last one."""
        seqs = self.tenant_seqs.get(tenant, [])
        index = bisect.bisect_left(seqs, before) - 1
        bottom = self.floor if self.paged else 0
        page: list[Job] = []
        while index >= 0 and seqs[index] > bottom and len(page) < limit:
            job = self.table[self.seq_to_job[seqs[index]]]
            if (not states or job.state in states) and job.job_id not in hidden:
                page.append(job)
            index -= 1
        return page, index >= 0 or (self.paged and bottom > 0)

    def below_floor(self, tenant: str, before: int) -> list[Job]:
        """The tenant's jobs still in memory with seq below `before` and at or below the floor."""
        seqs = self.tenant_seqs.get(tenant, [])
        end = bisect.bisect_left(seqs, min(before, self.floor + 1))
        return [self.table[self.seq_to_job[s]] for s in seqs[:end]]

    def merge_page(self, stored: list[Job], in_memory: list[Job], states: frozenset[JobState], limit: int, hidden: frozenset[str] | set[str]) -> tuple[list[Job], bool]:
        """Below the floor: the store's jobs (newest first, `limit + len(in_memory) + 1` asked
        for) merged with those still in memory (memory's version wins). Returns up to
        `limit` newest first, and whether more remain."""
        merged = {j.job_id: j for j in stored if j.job_id not in self.table}
        merged.update((j.job_id, j) for j in in_memory if (not states or j.state in states) and j.job_id not in hidden)
        ordered = sorted(merged.values(), key=lambda j: j.seq, reverse=True)
        return ordered[:limit], len(ordered) > limit
