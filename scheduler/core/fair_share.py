"""Fair share: the order a pass takes the queue in when contracts or weights are set.

`FairQueue` is placement's QueuePolicy (core/placement.py). The next job is, among the
tenants' next jobs, the first by:
1. whether it fits within its tenant's firm share (in a region it may use): firm claims
   go before borrowing, a tenant's own included (its job that fits its firm share goes
   before its higher-priority one that would borrow; that one may still preempt the
   tenant's own lower-priority runs);
2. its tenant's dominant share over the job's regions, divided by its weight, lowest
   first (dominant resource fairness: core/contracts.py, `Book.share`);
3. its priority, then its submission order.
A tenant's next job is its first (priority, then submission) still within its firm share,
else its first: within each of the two, a tenant's priorities keep their order. The
order is lazy: a job placed (or given room) counts for its tenant at once, so the next
pick already sees that tenant's larger share (DRF's progressive filling) and the firm
share it has left. One pick is a few heap operations, so a long queue stays one pass.

Why firm claims go first, whatever the tenant's other jobs: a claim that reclaimed
borrowed runs (core/reclaim.py) must be first for the GPUs they free once gone; the runs
themselves come back beyond their tenant's firm share, so they are behind it.

Regions: a tenant past its burst limit in a region (`burst_gpus` beyond firm) may not use
it; a job beyond its firm share that waits says where its tenant stands ("tenant acme is
at its 512-GPU contract in us (480 in use)"), after placement's "N jobs ahead; ".
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence

from scheduler.core.contracts import Book
from scheduler.core.jobs import Job
from scheduler.core.placement import SiteCapacity


class FairQueue:
    def __init__(self, book: Book):
        self.book = book
        self._firm: dict[str, bool] = {}  # job id -> within firm share when it was taken

    def firm(self, job: Job) -> bool:
        return bool(self.book.firm_regions(job))

    def _head(self, firm: list, rest: list) -> tuple[bool, tuple] | None:
        """A tenant's next job: its first still within the firm share, else its first (by priority, then seq)."""
        while firm and not self.firm(firm[0][3]):
            heapq.heappush(rest, heapq.heappop(firm))  # its tenant's use grew this pass: it borrows now
        if firm:
            return True, firm[0]
        return (False, rest[0]) if rest else None

    def order(self, pending: Iterable[Job]) -> Iterator[Job]:
        queues: dict[str, tuple[list, list]] = {}
        for job in pending:
            firm, rest = queues.setdefault(job.tenant, ([], []))
            (firm if self.firm(job) else rest).append((-job.spec.priority, job.seq, job.job_id, job))
        heap = []

        def push(n: int, tenant: str) -> None:
            head = self._head(*queues[tenant])
            if head is not None:
                is_firm, (*_, job) = head
                heapq.heappush(heap, ((not is_firm, self.book.share(tenant, job.spec.allowed_regions), -job.spec.priority, job.seq), n, tenant))

        for n, (tenant, (firm, rest)) in enumerate(queues.items()):
            heapq.heapify(firm)
            heapq.heapify(rest)
            push(n, tenant)
        while heap:
            (borrowing, *_), n, tenant = heapq.heappop(heap)
            firm, rest = queues[tenant]
            job = heapq.heappop(rest if borrowing else firm)[3]
            self._firm[job.job_id] = not borrowing
            yield job  # placement may count it (`placed`) before the next pick
            push(n, tenant)

    def admit(self, job: Job, regions: Sequence[str]) -> Sequence[str]:
        return tuple(r for r in regions if self.book.admits(job, r))

    def standing(self, job: Job, regions: Sequence[str]) -> str:
        firm = self._firm.get(job.job_id)
        return "" if firm or (firm is None and self.firm(job)) else self.book.standing(job, regions)

    def shape(self, job: Job) -> tuple[str, bool]:
        return job.tenant, self._firm.get(job.job_id, False)

    def placed(self, job: Job, site: SiteCapacity) -> None:
        self.book.add(job, site)


__all__ = ["FairQueue"]
