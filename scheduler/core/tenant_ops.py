"""Tenant operations on jobs already submitted: reprioritizing one job and choosing the jobs
a cancel by label reaches. Pure rules; the controller applies their decisions.

Reprioritize (`reprioritize`): a PENDING or PREEMPTED job takes its new place in the queue at
once (placement orders by priority, then submission order); a SCHEDULED, STARTING or RUNNING
job keeps its run, and its new priority counts from now on for placement and for priority
preemption (as a victim or as the job that waits). A job that is ending (CANCELLING) or
ended refuses with FailedPrecondition. The change is logged as a job event whose from_state
and to_state are the job's state, reason "priority 3 -> 7 by tenant".

Cancel by label (`select_for_cancel`): the caller's jobs whose labels hold every key=value of
the selector, in a cancellable state (PENDING, SCHEDULED, STARTING, RUNNING, PREEMPTED, or the
subset asked for), oldest first, at most `limit` of them. Only unfinished jobs can match, and
they are always in memory (core/resident_jobs.py pages out finished jobs only), so the
candidates are the in-memory pending and active jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from scheduler.core import runs
from scheduler.core.decisions import Decision
from scheduler.core.errors import FailedPrecondition, InvalidArgument
from scheduler.core.jobs import TERMINAL, Job, JobEvent, JobState
from scheduler.core.validation import _LABEL_KEY, MAX_KEY, MAX_LABEL_VALUE, MAX_MAP_ENTRIES, PRIORITY_RANGE

S = JobState
CANCELLABLE = frozenset({S.PENDING, S.SCHEDULED, S.STARTING, S.RUNNING, S.PREEMPTED})
MAX_CANCEL = 1000  # jobs one CancelJobs call cancels (or lists, dry run) at most


def reprioritize(job: Job, priority: int, now: float) -> Decision:
    """The job at `priority`, and the event recording the change (nothing when unchanged)."""
    if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        raise InvalidArgument(f"priority must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}, got {priority}")
    if job.state in TERMINAL or job.state == S.CANCELLING:
        raise FailedPrecondition(f"job {job.job_id} is {job.state.name}; only a job that has not ended can be reprioritized")
    decision = Decision()
    old = job.spec.priority
    if priority == old:
        return decision
    new = dataclasses.replace(job, spec=dataclasses.replace(job.spec, priority=priority), updated_at=now)
    reason = f"priority {old} -> {priority} by tenant"
    decision.record(new, JobEvent(job.job_id, job.tenant, job.state, job.state, reason, now, job.site_id, job.run_id))
    return decision


def check_selector(selector: Mapping[str, str], states: Iterable[JobState]) -> frozenset[JobState]:
    """Refuse a selector that matches everything or is malformed; the states to match
    (empty: every cancellable state)."""
    if not selector:
        raise InvalidArgument("selector is empty; name at least one label (key=value) the jobs to cancel must carry")
    if len(selector) > MAX_MAP_ENTRIES:
        raise InvalidArgument(f"selector has {len(selector)} labels; at most {MAX_MAP_ENTRIES} allowed")
    for key, value in selector.items():
        if len(key) > MAX_KEY or not _LABEL_KEY.match(key):
            raise InvalidArgument(f"selector key {key[:40]!r} is not a valid label name")
        if len(value) > MAX_LABEL_VALUE:
            raise InvalidArgument(f"selector[{key[:40]}] is {len(value)} characters; at most {MAX_LABEL_VALUE} allowed")
    wanted = frozenset(states)
    if not wanted <= CANCELLABLE:
        bad = ", ".join(sorted(s.name for s in wanted - CANCELLABLE))
        raise InvalidArgument(f"states {bad} cannot be cancelled; choose among {', '.join(sorted(s.name for s in CANCELLABLE))}")
    return wanted or CANCELLABLE


def select_for_cancel(
    candidates: Iterable[Job], tenant: str, selector: Mapping[str, str], states: frozenset[JobState], limit: int = MAX_CANCEL
) -> tuple[list[Job], int]:
    """The tenant's matching jobs, oldest first, at most `limit`, and how many matched in all."""
    matched = [j for j in candidates if j.tenant == tenant and j.state in states and all(j.spec.labels.get(k) == v for k, v in selector.items())]
    matched.sort(key=lambda j: j.seq)
    return matched[:limit], len(matched)


def cancel_by_label(
    candidates: Iterable[Job], tenant: str, selector: Mapping[str, str], states: Iterable[JobState], reason: str, now: float, dry_run: bool
) -> tuple[list[Job], int, Decision]:
    """The jobs chosen (select_for_cancel), how many matched, and the decision cancelling
    them all at once (empty on a dry run)."""
    chosen, matched = select_for_cancel(candidates, tenant, selector, check_selector(selector, states))
    decision = Decision()
    if not dry_run:
        for job in chosen:
            decision.extend(runs.cancel(job, reason, now))
    return chosen, matched, decision
