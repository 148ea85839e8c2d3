"""What the core decides: new job versions with their events, grid event records,
and orders for agents.

The shell persists `jobs`, `events` and `grid` in one transaction, then publishes the
events and only then sends `orders`, so nothing is ordered that a crash could forget.
A decision that writes nothing sends its orders at once (a held start released).
The one exception is explicit: `urgent` orders change no job (fleet mining targets)
and leave before the commit, because a grid cut is met by mining first and must not
wait for the disk; if the commit then fails the process stops, and the restarted
scheduler sends targets again (they are stateless: the agent holds the last it got).
`pending_reasons` are derived state: recomputed every scheduling pass, kept in
memory, never written (a restart recomputes them on its first pass). `notes` are
lines for the operator's log, with their level ("info" or "warning").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.core.grid import GridEventRecord
from scheduler.core.jobs import Job, JobEvent, JobSpec

# Why a run is preempted or shed: dispatch's power causes, "priority" (placement made room
# for a higher-priority job, core/priority.py) and "contract" (a firm claim reclaimed a
# borrowed run, core/reclaim.py).
PREEMPTION_CAUSES = ("grid_emergency", "grid_cap_limit", "site_cap", "priority", "contract")


@dataclass(frozen=True)
class StartRun:
    site_id: str
    run_id: str
    job_id: str
    tenant: str
    spec: JobSpec


@dataclass(frozen=True)
class StopRun:
    site_id: str
    run_id: str
    reason: str
    checkpoint_grace_s: int = 0  # > 0: ask the run to checkpoint, stop it after this at most


@dataclass(frozen=True)
class SetMiningTargets:
    """Power targets for every mining fleet of a site, and the cap they were planned under."""

    site_id: str
    targets_w: dict[str, float]
    cap_w: float
    cap_event_active: bool
    cause: str = ""


@dataclass(frozen=True)
class CapRunPower:
    """Cap a run's GPUs to a fraction of their load power (1.0 lifts the cap)."""

    site_id: str
    run_id: str
    power_fraction: float
    cause: str = ""


@dataclass(frozen=True)
class ScaleRun:
    """Scale a Serve inference run to this many replicas (see core/autoscale.py)."""

    site_id: str
    run_id: str
    replicas: int
    cause: str = ""


Order = StartRun | StopRun | SetMiningTargets | CapRunPower | ScaleRun


@dataclass
class Decision:
    jobs: list[Job] = field(default_factory=list)  # new versions, in order
    events: list[JobEvent] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)  # leave after the commit
    urgent: list[SetMiningTargets] = field(default_factory=list)  # change no job: leave before the commit
    pending_reasons: dict[str, str] = field(default_factory=dict)  # job_id -> why it waits
    grid: list[GridEventRecord] = field(default_factory=list)  # grid event records to persist (newest last)
    notes: list[tuple] = field(default_factory=list)  # (level, line) or (level, line, ids) for the log; ids: job_id, run_id, site_id, grid_event_id
    preemptions: list[str] = field(default_factory=list)  # the cause of each run it preempts or sheds (PREEMPTION_CAUSES)

    def record(self, job: Job, event: JobEvent | None = None) -> Job:
        self.jobs.append(job)
        if event is not None:
            self.events.append(event)
        return job

    def extend(self, other: Decision) -> None:
        self.jobs.extend(other.jobs)
        self.events.extend(other.events)
        self.orders.extend(other.orders)
        self.urgent.extend(other.urgent)
        self.pending_reasons.update(other.pending_reasons)
        self.grid.extend(other.grid)
        self.notes.extend(other.notes)
        self.preemptions.extend(other.preemptions)

    @property
    def writes(self) -> bool:
        """Whether applying it needs a commit before its orders may leave."""
        return bool(self.jobs or self.events or self.grid)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.events or self.orders or self.urgent or self.pending_reasons or self.grid or self.notes)


def start_order(job: Job) -> StartRun:  # noqa: D103 (the checkpoint location is the shell's: its config)
    return StartRun(job.site_id, job.run_id, job.job_id, job.tenant, job.spec)
