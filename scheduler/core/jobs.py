"""The job model and its state machine.

A job has exactly one state (`JobState`); `TRANSITIONS` lists every legal move and
`transition()` is the only way to change state: it refuses anything else with
`IllegalTransition` and returns the event that records the move and its reason.

A job runs as a sequence of *runs* (attempts); run `n` of job `J` has id `J-rN`,
which the site agent uses as Ray's `submission_id`, so a repeated start order can
never start the same attempt twice. Runs of one job never overlap: a run whose end
was not confirmed (its site was lost) stays in `Job.lingering` until its site's agent
confirms it gone, and no new run of the job starts on that site before then
(scheduler/core/runs.py states the whole fence).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from dataclasses import dataclass, field

from scheduler.core.errors import IllegalTransition

DEFAULT_CHECKPOINT_GRACE_S = 30


class JobKind(enum.IntEnum):
    TRAINING = 1
    INFERENCE = 2


class JobState(enum.IntEnum):
    PENDING = 1
    SCHEDULED = 2
    STARTING = 3
    RUNNING = 4
    CANCELLING = 5
    SUCCEEDED = 6
    FAILED = 7
    CANCELLED = 8
    PREEMPTED = 9


S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.CANCELLED, S.FAILED}),
    # SCHEDULED/STARTING -> PENDING: the site was lost or refused the start (requeue).
    # SCHEDULED/STARTING -> PREEMPTED: stopped before it ran; requeued once confirmed gone.
    S.SCHEDULED: frozenset({S.STARTING, S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELLING, S.PENDING, S.PREEMPTED}),
    S.STARTING: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELLING, S.PENDING, S.PREEMPTED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLING, S.PREEMPTED, S.PENDING}),
    # A stop races with the run's natural end; whichever the agent reports first wins.
    S.CANCELLING: frozenset({S.CANCELLED, S.SUCCEEDED, S.FAILED}),
    S.PREEMPTED: frozenset({S.PENDING, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
# States in which a job holds a site's resources through its current run (a PREEMPTED
# run checkpoints within its grace period and holds its GPUs and power until it stops).
ACTIVE = frozenset({S.SCHEDULED, S.STARTING, S.RUNNING, S.CANCELLING, S.PREEMPTED})


@dataclass(frozen=True)
class Resources:
    gpus: int = 0
    cpus: float = 0.0
    memory_bytes: int = 0


@dataclass(frozen=True)
class JobSpec:
    """What a tenant asked for. Frozen: the derived figures below are computed once per spec."""

    kind: JobKind
    entrypoint: str
    resources: Resources = Resources()
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    priority: int = 0
    allowed_regions: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    max_runtime_s: int = 0
    max_retries: int = 3
    slowdown_tolerance_pct: int = 0  # training: how much slower it may run power-capped (0..50 %)
    checkpoint_uri: str = ""  # training: where checkpoints live ("": checkpoint_root/<tenant>/<job_id>)
    checkpoint_grace_s: int = DEFAULT_CHECKPOINT_GRACE_S  # training: time to checkpoint when preempted
    serve_import_path: str = ""  # inference on Ray Serve: "module:app" ("": a plain Ray job)
    min_replicas: int = 0  # Serve inference: fewest replicas (0 means 1)
    max_replicas: int = 0  # Serve inference: most replicas (0: min_replicas, no scaling)
    target_rps_per_replica: float = 0.0  # Serve inference: demand one replica serves

    @functools.cached_property
    def served(self) -> bool:
        """An inference service on Ray Serve, scaled between min and max replicas."""
        return self.kind == JobKind.INFERENCE and bool(self.serve_import_path)

    @functools.cached_property
    def replica_bounds(self) -> tuple[int, int]:
        """(fewest, most) replicas: a Serve job's range, else its fixed count."""
        if not self.served:
            return (self.replicas, self.replicas)
        low = max(1, self.min_replicas)
        return (low, max(low, self.max_replicas))

    @functools.cached_property
    def total_gpus(self) -> int:
        """GPUs the job needs on one site to start: the gang, or replicas x GPUs each
        (a Serve job starts at its fewest replicas; Job.total_gpus follows its scaling)."""
        if self.served:
            return self.resources.gpus * self.replica_bounds[0]
        return self.resources.gpus * (self.replicas if self.kind == JobKind.INFERENCE else 1)


@dataclass(frozen=True)
class Job:
    job_id: str
    tenant: str
    client_request_id: str
    spec: JobSpec
    state: JobState
    seq: int  # submission order, for first-come-first-served within a priority
    created_at: float
    updated_at: float
    reason: str = ""
    pending_reason: str = ""
    site_id: str = ""
    attempt: int = 0  # runs started so far; the current run is `run_id`
    started_at: float = 0.0  # when the current run was last seen RUNNING first
    # Set on entering CANCELLING: what the job becomes once its run is stopped
    # (CANCELLED for a tenant's cancel, FAILED when it overran max_runtime_s).
    stop_outcome: JobState | None = None
    last_event_id: int = 0
    preemptions: int = 0  # runs stopped to free power or GPUs (not counted against max_retries)
    power_fraction: float = 1.0  # the current run's GPU power cap (1: uncapped)
    # Serve inference: replicas now (0: not scaled yet, the spec's fewest), the demand
    # its site measured last and where it answers.
    replicas: int = 0
    requests_per_s: float = 0.0
    endpoint: str = ""
    # Training: progress and latest checkpoint as its runs reported them (see docs/checkpoints.md).
    progress_step: int = 0
    progress_at: float = 0.0
    checkpoint_step: int = 0
    checkpoint_at: float = 0.0
    # Earlier runs whose end no agent confirmed (their site was lost past the timeout):
    # (site_id, run_id) pairs. A new run never starts on such a site until its agent
    # reports that run ended or lists it no more.
    lingering: tuple[tuple[str, str], ...] = ()
    # PREEMPTED for a higher-priority job (core/priority.py): its id, while this run stops
    # (the room it frees is that job's); cleared when the job leaves PREEMPTED.
    preempted_for: str = ""

    @property
    def current_replicas(self) -> int:
        return self.replicas or self.spec.replica_bounds[0]

    @property
    def total_gpus(self) -> int:
        """GPUs the job holds (or needs) on its site now: a Serve job's follow its replicas."""
        if self.spec.served:
            return self.spec.resources.gpus * self.current_replicas
        return self.spec.total_gpus

    @functools.cached_property
    def run_id(self) -> str:
        """The current run's id ("" before the first); a version is frozen, so it is made once."""
        return run_id_for(self.job_id, self.attempt) if self.attempt else ""

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class JobEvent:
    """One transition, as appended to the event log (event_id is given by the store).

    A run's GPU power cap changing is logged too, as an event whose from_state and
    to_state are both the job's state and whose `power_fraction` is the new cap
    (`power_capped`); every other event leaves it None. Accounting (core/usage.py)
    integrates a run's energy from these."""

    job_id: str
    tenant: str
    from_state: JobState | None
    to_state: JobState
    reason: str
    at: float
    site_id: str = ""
    run_id: str = ""
    event_id: int = 0
    power_fraction: float | None = None  # a power cap change: the run's new GPU power fraction


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))


def amend(job: Job, **changes) -> Job:
    """`dataclasses.replace(job, **changes)` for the hot paths (readings on every heartbeat):
    the same new version, built without running the generated __init__ again. Only the
    dataclass fields are copied (nothing cached on the old version comes along)."""
    unknown = changes.keys() - set(_JOB_FIELDS)
    if unknown:
        raise TypeError(f"Job has no field {', '.join(sorted(unknown))}")
    old = job.__dict__
    new = object.__new__(Job)
    new.__dict__.update({name: old[name] for name in _JOB_FIELDS})
    new.__dict__.update(changes)
    return new


def run_id_for(job_id: str, attempt: int) -> str:
    return f"{job_id}-r{attempt}"


def parse_run_id(run_id: str) -> tuple[str, int]:
    """Inverse of run_id_for; raises ValueError on a foreign id."""
    job_id, sep, attempt = run_id.rpartition("-r")
    if not sep or not job_id or not attempt.isdigit():
        raise ValueError(f"not a Powerplane run id: {run_id!r}")
    return job_id, int(attempt)


def can_transition(source: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[source]


def transition(job: Job, target: JobState, reason: str, now: float, **changes) -> tuple[Job, JobEvent]:
    """Move `job` to `target`, returning the new job and the event recording it.

    `changes` sets other fields at the same time (site_id, attempt, pending_reason).
    Leaving PENDING clears pending_reason; leaving PREEMPTED clears preempted_for.
    """
    if not can_transition(job.state, target):
        raise IllegalTransition(f"job {job.job_id}: {job.state.name} -> {target.name} is not allowed ({reason})")
    if not reason:
        raise ValueError("every transition needs a reason")
    if target != JobState.PENDING:
        changes.setdefault("pending_reason", "")
    if job.preempted_for and target != JobState.PREEMPTED:
        changes.setdefault("preempted_for", "")
    new = dataclasses.replace(job, state=target, reason=reason, updated_at=now, **changes)
    event = JobEvent(
        job_id=job.job_id,
        tenant=job.tenant,
        from_state=job.state,
        to_state=target,
        reason=reason,
        at=now,
        site_id=new.site_id,
        run_id=new.run_id,
    )
    return new, event


def power_capped(job: Job, fraction: float, cause: str, now: float) -> tuple[Job, JobEvent]:
    """The job with its current run's GPU power cap set to `fraction`, and the event that
    logs the change (no state change: from_state == to_state)."""
    new = dataclasses.replace(job, power_fraction=fraction)
    what = "lifted" if fraction >= 1.0 else f"{fraction:.0%}"
    reason = f"GPU power cap {what}" + (f": {cause}" if cause else "")
    return new, JobEvent(job.job_id, job.tenant, job.state, job.state, reason, now, job.site_id, job.run_id, power_fraction=fraction)


def new_job(job_id: str, tenant: str, client_request_id: str, spec: JobSpec, seq: int, now: float) -> tuple[Job, JobEvent]:
    """A freshly submitted job (PENDING) and its creation event."""
    job = Job(
        job_id=job_id,
        tenant=tenant,
        client_request_id=client_request_id,
        spec=spec,
        state=JobState.PENDING,
        seq=seq,
        created_at=now,
        updated_at=now,
        reason="submitted",
        pending_reason="waiting for the next scheduling pass",
    )
    event = JobEvent(job_id, tenant, None, JobState.PENDING, "submitted", now)
    return job, event
