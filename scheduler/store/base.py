"""The storage contract the scheduler's shell relies on.

Invariants every implementation keeps:
- `commit()` is atomic and durable when it returns: either all of its jobs,
  events and sites are stored or none is.
- Event ids strictly increase in commit order; `events_after` returns them in order.
- (tenant, client_request_id) is unique across jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scheduler.core.grid import GridEventRecord
from scheduler.core.jobs import Job, JobEvent
from scheduler.core.sites import Site


@dataclass(frozen=True)
class Snapshot:
    jobs: list[Job]
    sites: list[Site]
    grid_events: list[GridEventRecord] = field(default_factory=list)


class Store(Protocol):
    def load(self) -> Snapshot: ...

    def commit(self, jobs: Sequence[Job], events: Sequence[JobEvent], sites: Sequence[Site], grid_events: Sequence[GridEventRecord] = ()) -> list[int]:
        """Store everything in one transaction (grid events upserted by event id); return the new job events' ids in order."""
        ...

    def events_after(self, tenant: str, after_event_id: int, job_id: str = "", limit: int = 1000) -> list[JobEvent]: ...

    def close(self) -> None: ...
