"""The storage contract the scheduler's shell relies on.

Invariants every implementation keeps:
- `commit()` is atomic and durable when it returns: either all of its jobs,
  events and sites are stored or none is.
- Event ids strictly increase in commit order; `events_after` returns them in order.
- (tenant, client_request_id) is unique across jobs: a commit that would break it
  raises `DuplicateRequest` and stores nothing.
- With several scheduler replicas, one row holds the leader's lease; a commit that
  carries an epoch other than the lease's is refused (`Fenced`) and stores nothing.
- The schema is versioned (migrations.py): a store opens a database it knows, migrates
  it when asked, and refuses one written by a newer powerplane (`SchemaTooNew`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scheduler.core.grid import GridEventRecord
from scheduler.core.jobs import Job, JobEvent, JobState
from scheduler.core.leadership import Lease
from scheduler.core.sites import Site


class StoreError(Exception):
    """A store refuses or cannot do its work; the message is one line, without secrets."""


class DuplicateRequest(StoreError):
    """A commit held a job whose (tenant, client_request_id) another job already has."""


class SchemaTooNew(StoreError):
    """The database was written by a newer powerplane: its schema version is unknown here."""


class SchemaBehind(StoreError):
    """The database's schema is older than this powerplane's and was opened without migrating."""


@dataclass(frozen=True)
class Snapshot:
    """What a scheduler starts from (or a warm standby follows: job_queries.py)."""

    jobs: list[Job]
    sites: list[Site]
    grid_events: list[GridEventRecord] = field(default_factory=list)
    paged_out: dict[tuple[JobState, str], int] = field(default_factory=dict)  # finished jobs left in the store, by (state, tenant)
    changed_through: int = 0  # the last commit whose job writes it includes (`changes_after` goes on from there)


class Store(Protocol):
    def load(self, recent: int | None = None) -> Snapshot:
        """Every job (`recent` None), or the unfinished ones and the newest `recent` submissions
        (the rest counted in `paged_out`), with every site and grid event, as of one moment."""
        ...

    def changes_after(self, mark: int) -> Snapshot:
        """The jobs written since `mark` (a snapshot's `changed_through`), every site and grid event."""
        ...

    def get_job(self, job_id: str) -> Job | None: ...

    def job_by_request(self, tenant: str, client_request_id: str) -> Job | None: ...

    def tenant_jobs(self, tenant: str, before_seq: int, states: frozenset[JobState], limit: int) -> list[Job]:
        """A tenant's jobs with seq below `before_seq` (in `states`, when given), newest first."""
        ...

    def commit(
        self, jobs: Sequence[Job], events: Sequence[JobEvent], sites: Sequence[Site], grid_events: Sequence[GridEventRecord] = (), epoch: int | None = None
    ) -> list[int]:
        """Store everything in one transaction (grid events upserted by event id); return the new job events' ids in order.
        `epoch`: a leading replica's; the commit is refused (`Fenced`, nothing written) unless it is the lease's."""
        ...

    def claim_lease(self, holder: str, address: str, ttl_s: float) -> Lease | None:
        """Take or renew the leader's lease in one transaction (scheduler/core/leadership.py); None if another holds it."""
        ...

    def current_lease(self) -> Lease | None: ...

    def release_lease(self, holder: str, epoch: int) -> bool:
        """Let the lease go now if `holder` still holds it in `epoch` (a graceful stop)."""
        ...

    def compact_events(self, keep: int) -> int:
        """Event log retention: delete all but the newest `keep` events; returns how many went."""
        ...

    def compacted_through(self) -> int:
        """The highest event id compacted away (0: none)."""
        ...

    def delete_grid_events(self, event_ids: Sequence[str]) -> int: ...

    def events_after(self, tenant: str, after_event_id: int, job_id: str = "", limit: int = 1000) -> list[JobEvent]: ...

    def close(self) -> None: ...
