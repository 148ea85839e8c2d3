"""How jobs react to what agents report about runs, to lost sites, cancels and time.

Every function here is pure: it takes jobs (and `now`) and returns a `Decision`.

Rules, in one place:
- A report about a run that is not the job's current run, or about a job that is
  terminal or unknown, is stale: if that run is still active on the site it is
  stopped (so a run is never left running twice).
- An agent that registers lists every run it finds on its Ray cluster. For each
  job the scheduler has on that site: a SCHEDULED run it does not list gets its
  start order again (Ray's submission_id makes that idempotent); a STARTING or
  RUNNING run it does not list is lost.
- A lost run (Ray lost it, or its site stayed unreachable past the timeout) puts
  its job back to PENDING if it has retries left (`max_retries`), else FAILED.
  A CANCELLING job whose run is gone is CANCELLED. Preemptions do not count as
  retries: a job preempted to free power has as many retries left as before.
- The fence: a job's next run never starts while an earlier run may still be alive.
  A run's end is confirmed when its agent reports it ended or no longer lists it
  (Ray has no such job). Every stop waits for that confirmation (CANCELLING,
  PREEMPTED), with one exception: a site unreachable past `site_timeout_s` is
  declared lost and its runs are released without it. Such a run stays in
  `Job.lingering`; the job may run on another site at once (the timeout is the
  fence; training checkpoints are fenced by attempt, powerplane_sdk/checkpoints.py),
  but a new run placed on the lost site waits, SCHEDULED with its start withheld,
  until that site's agent confirms the old run gone (it reports the old run as a
  stale run, which is stopped first).
- A preempted RUNNING run (the power ladder needs its power) goes to PREEMPTED: a
  training run with a grace period is first asked to checkpoint and stopped once it
  exits or its grace runs out; it holds its GPUs and power until the agent reports
  it gone, then its job goes back to PENDING with how much work was lost (steps since
  its last checkpoint) and resumes from that checkpoint, here or elsewhere. A run
  preempted before it ran (SCHEDULED/STARTING) is stopped with no grace and, like
  any preempted run, requeued once its agent confirms it gone (its start may have
  reached Ray already). A placed run that never started and no longer fits its site's power goes back
  to PENDING without a stop (nothing was started).
- A run that fails on its own is FAILED with Ray's message: no retry (the
  entrypoint itself is at fault, running it again would fail again).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scheduler.core.decisions import Decision, StartRun, StopRun, start_order
from scheduler.core.errors import FailedPrecondition
from scheduler.core.jobs import ACTIVE, Job, JobKind, JobState, amend, parse_run_id, transition

S = JobState


class RunState(enum.IntEnum):
    STARTING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    STOPPED = 5
    UNKNOWN = 6


RUN_ACTIVE = frozenset({RunState.STARTING, RunState.RUNNING})


@dataclass(frozen=True)
class RunProgress:
    """A training run's progress and latest checkpoint, as the run wrote them (0: none)."""

    step: int = 0
    step_at: float = 0.0
    checkpoint_step: int = 0
    checkpoint_at: float = 0.0


@dataclass(frozen=True)
class ServeLoad:
    """A Serve inference run's demand and size, as its site measured them."""

    requests_per_s: float = 0.0
    replicas: int = 0
    endpoint: str = ""


@dataclass(frozen=True)
class RunReport:
    run_id: str
    state: RunState
    message: str = ""
    progress: RunProgress | None = None  # training runs with a checkpoint dir
    serve: ServeLoad | None = None  # Serve inference runs


def observe(job: Job, report: RunReport) -> Job:
    """The job with what a report of its current run measured (progress, demand); no
    transition and no event: these are readings, kept on the job for the next decisions."""
    changes: dict = {}
    progress = report.progress
    if progress is not None and (progress.step, progress.checkpoint_step) != (0, 0):
        changes.update(progress_step=progress.step, progress_at=progress.step_at)  # a resumed run restarts at its checkpoint
        if progress.checkpoint_step >= job.checkpoint_step and progress.checkpoint_at:
            changes.update(checkpoint_step=progress.checkpoint_step, checkpoint_at=progress.checkpoint_at)
    serve = report.serve
    if serve is not None:
        changes.update(requests_per_s=serve.requests_per_s, endpoint=serve.endpoint or job.endpoint)
    if not changes or all(getattr(job, k) == v for k, v in changes.items()):
        return job
    return amend(job, **changes)


def _stop(site_id: str, run_id: str, reason: str) -> StopRun:
    return StopRun(site_id=site_id, run_id=run_id, reason=reason)


def lose_run(job: Job, why: str, now: float, confirmed: bool = True) -> Decision:
    """The job's current run is gone: requeue it, fail it, or finish its cancel.
    `confirmed=False`: nobody saw it end (its site was lost); it stays lingering."""
    decision = Decision()
    changes = {} if confirmed else {"lingering": (*job.lingering, (job.site_id, job.run_id))}  # kept on a terminal job too: harmless
    if job.state == S.CANCELLING:
        decision.record(*transition(job, job.stop_outcome or S.CANCELLED, f"{why}; stop complete", now, **changes))
    elif job.state == S.PREEMPTED:
        decision.extend(preempted_run_gone(job, f"is gone ({why})", now, **changes))
    elif job.attempt - job.preemptions <= job.spec.max_retries:
        lost = job.attempt - job.preemptions  # preemptions are not failures
        reason = f"{why}; requeued (attempt {lost} of {job.spec.max_retries + 1})"
        decision.record(*transition(job, S.PENDING, reason, now, pending_reason="requeued after a lost run", **changes))
    else:
        decision.record(*transition(job, S.FAILED, f"{why}; no retries left (max_retries={job.spec.max_retries})", now, **changes))
    return decision


def _confirm_gone(job: Job, site_id: str, run_id: str) -> Decision:
    """An agent confirmed a lingering run of `job` ended: forget it, and start the job's
    run placed on that site if this was the last one it waited for."""
    decision = Decision()
    lingering = tuple(entry for entry in job.lingering if entry != (site_id, run_id))
    if lingering == job.lingering or job.is_terminal:  # a terminal job starts nothing again
        return decision
    job = decision.record(dataclasses.replace(job, lingering=lingering))
    if job.state == S.SCHEDULED and job.site_id == site_id and not _waits_on(job, site_id):
        decision.orders.append(start_order(job))
    return decision


def _waits_on(job: Job, site_id: str) -> bool:
    """Whether a run of `job` on `site_id` may still be alive without its agent having said so."""
    return any(site == site_id for site, _ in job.lingering)


def on_run_report(job: Job | None, site_id: str, report: RunReport, now: float) -> Decision:
    """React to one run's state as reported by the agent of `site_id`."""
    decision = Decision()
    current = job is not None and job.run_id == report.run_id and job.site_id == site_id and job.state in ACTIVE
    if not current:
        if job is not None and report.state not in RUN_ACTIVE:
            decision.extend(_confirm_gone(job, site_id, report.run_id))
        if report.state in RUN_ACTIVE:
            owner = "unknown job" if job is None else f"job is {job.state.name}, current run {job.run_id or 'none'}"
            decision.orders.append(_stop(site_id, report.run_id, f"stale run ({owner})"))
        return decision
    assert job is not None
    detail = f": {report.message}" if report.message else ""
    if job.state == S.PREEMPTED:
        if report.state not in RUN_ACTIVE:
            how = {RunState.SUCCEEDED: "exited", RunState.FAILED: "failed", RunState.STOPPED: "was stopped"}.get(report.state, "is gone")
            decision.extend(preempted_run_gone(job, how, now))
        return decision
    match report.state:
        case RunState.STARTING if job.state == S.SCHEDULED:
            decision.record(*transition(job, S.STARTING, f"submitted to Ray on {site_id}", now))
        case RunState.RUNNING if job.state in (S.SCHEDULED, S.STARTING):
            decision.record(*transition(job, S.RUNNING, f"running on {site_id}", now, started_at=now))
        case RunState.SUCCEEDED:
            decision.record(*transition(job, S.SUCCEEDED, f"run {report.run_id} succeeded", now))
        case RunState.FAILED:
            decision.record(*transition(job, S.FAILED, f"run {report.run_id} failed{detail}", now))
        case RunState.STOPPED if job.state == S.CANCELLING:
            decision.record(*transition(job, job.stop_outcome or S.CANCELLED, f"{job.reason}; run stopped", now))
        case RunState.STOPPED:
            decision.record(*transition(job, S.FAILED, f"run {report.run_id} was stopped outside Powerplane{detail}", now))
        case RunState.UNKNOWN if job.state == S.SCHEDULED:
            if not _waits_on(job, site_id):  # the start was lost in transit: order it again
                decision.orders.append(start_order(job))
        case RunState.UNKNOWN:
            decision.extend(lose_run(job, f"site {site_id} no longer has run {report.run_id}", now))
        case _:
            pass  # no change (e.g. RUNNING reported again)
    return decision


def on_run_reports(jobs: Mapping[str, Job], site_id: str, reports: Iterable[RunReport], now: float) -> Decision:
    """A batch of run reports from one site's agent (a heartbeat, a run event): readings
    kept on the jobs (`observe`, no event) and the transitions they cause. Later reports
    in the batch see the changes of earlier ones."""
    decision = Decision()
    latest: dict[str, Job] = {}
    for report in reports:
        try:
            job_id = parse_run_id(report.run_id)[0]
        except ValueError:
            continue  # not ours
        job = latest.get(job_id) or jobs.get(job_id)
        if job is not None and job.run_id == report.run_id and job.site_id == site_id:
            observed = observe(job, report)
            if observed is not job:
                job = latest[job_id] = decision.record(observed)  # readings: persisted with the next commit, no event
            if report.state == RunState.RUNNING and job.state == S.RUNNING:
                continue  # the common heartbeat: a running run still running changes nothing more
        sub = on_run_report(job, site_id, report, now)
        for changed in sub.jobs:
            latest[changed.job_id] = changed
        decision.extend(sub)
    return decision


def on_register(site_id: str, jobs_on_site: Iterable[Job], reported: Mapping[str, RunReport], jobs_by_id: Mapping[str, Job], now: float) -> Decision:
    """Reconcile what a (re)connecting agent runs with what the scheduler has there."""
    decision = Decision()
    expected = {}
    for job in jobs_on_site:
        if job.state not in ACTIVE or job.site_id != site_id:
            continue
        expected[job.run_id] = job
        report = reported.get(job.run_id)
        if report is None:
            report = RunReport(job.run_id, RunState.UNKNOWN, "not found on the site after reconnect")
        decision.extend(on_run_report(job, site_id, report, now))
        if job.state == S.CANCELLING and report.state in RUN_ACTIVE:
            decision.orders.append(_stop(site_id, job.run_id, job.reason))
    for run_id, report in reported.items():
        if run_id in expected:
            continue
        try:
            job = jobs_by_id.get(parse_run_id(run_id)[0])
        except ValueError:
            continue  # not ours: Ray jobs submitted by someone else are left alone
        decision.extend(on_run_report(_latest(decision, job), site_id, report, now))
    for job in jobs_by_id.values():  # lingering runs the agent does not list are gone
        for site, run_id in job.lingering:
            if site == site_id and run_id not in reported:
                decision.extend(_confirm_gone(_latest(decision, job), site_id, run_id))
    return decision


def _latest(decision: Decision, job: Job | None) -> Job | None:
    """`job` as `decision` left it (several reports in one pass may change one job)."""
    if job is None:
        return None
    return next((j for j in reversed(decision.jobs) if j.job_id == job.job_id), job)


def release_site(site_id: str, jobs_on_site: Iterable[Job], timeout_s: float, now: float) -> Decision:
    """The site stayed silent past the timeout: release every active run on it."""
    decision = Decision()
    for job in jobs_on_site:
        if job.state in ACTIVE and job.site_id == site_id:
            decision.extend(lose_run(job, f"site {site_id} unreachable for more than {timeout_s:g}s; run {job.run_id} lost", now, confirmed=False))
    return decision


def cancel(job: Job, reason: str, now: float) -> Decision:
    """A tenant's cancel. Idempotent on a job already cancelling or cancelled."""
    decision = Decision()
    reason = reason or "cancelled by tenant"
    if job.state in (S.PENDING, S.PREEMPTED):
        decision.record(*transition(job, S.CANCELLED, reason, now))
    elif job.state in (S.SCHEDULED, S.STARTING, S.RUNNING):
        decision.record(*transition(job, S.CANCELLING, reason, now, stop_outcome=S.CANCELLED))
        decision.orders.append(_stop(job.site_id, job.run_id, reason))
    elif job.state in (S.SUCCEEDED, S.FAILED):
        raise FailedPrecondition(f"job {job.job_id} already {job.state.name}; nothing to cancel")
    return decision


def preempt(job: Job, reason: str, now: float, max_grace_s: float | None = None) -> Decision:
    """Stop the job's run to free its power or GPUs; requeue the job once it is gone.

    A RUNNING run with a checkpoint grace (training) is asked to checkpoint first and
    gets min(its spec's grace, `max_grace_s`: what the grid event leaves) to do so."""
    decision = Decision()
    if job.state not in (S.SCHEDULED, S.STARTING, S.RUNNING):
        return decision  # already stopping or done
    if job.state != S.RUNNING:  # nothing trained yet: stop now; requeued once the agent confirms it gone
        decision.orders.append(_stop(job.site_id, job.run_id, reason))
        decision.record(*transition(job, S.PREEMPTED, f"{reason}; stopped before it ran", now, preemptions=job.preemptions + 1))
        return decision
    grace = job.spec.checkpoint_grace_s if job.spec.kind == JobKind.TRAINING else 0
    if max_grace_s is not None:
        grace = max(0, min(grace, int(max_grace_s)))
    asked = f"; asked to checkpoint within {grace}s" if grace else "; stopped now (no time to checkpoint)" if job.spec.kind == JobKind.TRAINING else ""
    at_step = f" at step {job.progress_step} (last checkpoint: step {job.checkpoint_step})" if job.progress_step else ""
    decision.orders.append(StopRun(job.site_id, job.run_id, reason, checkpoint_grace_s=grace))
    decision.record(*transition(job, S.PREEMPTED, f"{reason}{at_step}{asked}", now, preemptions=job.preemptions + 1))
    return decision


def preempt_for(victim: Job, job: Job, why: str, now: float, cause: str, max_grace_s: float | None = None) -> Decision:
    """`preempt` the victim's run to make room for `job`: PREEMPTED with `preempted_for` the
    job's id (so a restart finds the runs stopping for it), counted under `cause`."""
    stop = preempt(victim, why, now, max_grace_s)
    if stop.jobs:
        stop.jobs[-1] = dataclasses.replace(stop.jobs[-1], preempted_for=job.job_id)
        stop.preemptions.append(cause)
    return stop


def lost_s(job: Job, now: float) -> float:
    """Work a stop now would lose: since its last checkpoint, or since its start."""
    return max(0.0, now - (job.checkpoint_at or job.started_at))


def preempted_run_gone(job: Job, why: str, now: float, **changes) -> Decision:
    """A preempted run has stopped: requeue its job, saying how much work it lost."""
    decision = Decision()
    if job.spec.kind == JobKind.TRAINING and (job.progress_step or job.checkpoint_step):
        lost_steps, lost_s = work_lost(job)
        detail = (
            f"stopped at step {job.progress_step}; resumes from its checkpoint at step {job.checkpoint_step}"
            if job.checkpoint_step
            else f"stopped at step {job.progress_step}; no checkpoint yet, restarts from step 0"
        )
        detail += f"; work lost: {lost_steps} steps, {lost_s:.1f}s"
    else:
        detail = "nothing to resume from"
    cause = job.reason.split("; ")[0]  # the PREEMPTED event's cause, e.g. the grid event
    reason = f"{cause}; run {job.run_id} {why}: {detail}; requeued"
    decision.record(*transition(job, S.PENDING, reason, now, pending_reason="requeued after preemption", power_fraction=1.0, **changes))
    return decision


def work_lost(job: Job) -> tuple[int, float]:
    """(steps, seconds) a stopped run trained past its last checkpoint: work to redo."""
    steps = max(0, job.progress_step - job.checkpoint_step)
    if not steps:
        return 0, 0.0
    since = job.checkpoint_at or 0.0
    if not since or not job.progress_at:
        return steps, 0.0
    return steps, max(0.0, job.progress_at - since)


def overdue_preemptions(jobs: Iterable[Job], now: float, margin_s: float = 30.0) -> Decision:
    """Preempted runs still not gone well after their grace: order the stop again, now."""
    decision = Decision()
    for job in jobs:
        if job.state == S.PREEMPTED and now - job.updated_at > job.spec.checkpoint_grace_s + margin_s:
            decision.orders.append(_stop(job.site_id, job.run_id, f"{job.reason}; grace over, stop now"))
    return decision


def unplace(job: Job, reason: str, now: float) -> Decision:
    """A placed run that never started goes back to the queue (no stop: nothing ran)."""
    decision = Decision()
    if job.state == S.SCHEDULED:
        decision.record(*transition(job, S.PENDING, reason, now, pending_reason=reason, preemptions=job.preemptions + 1))
    return decision


def enforce_max_runtime(jobs: Iterable[Job], now: float) -> Decision:
    """Stop runs that overran their spec's max_runtime_s; they end FAILED."""
    decision = Decision()
    for job in jobs:
        limit = job.spec.max_runtime_s
        if job.state == S.RUNNING and limit and job.started_at and now - job.started_at > limit:
            reason = f"exceeded max_runtime_s={limit}"
            decision.record(*transition(job, S.CANCELLING, reason, now, stop_outcome=S.FAILED))
            decision.orders.append(_stop(job.site_id, job.run_id, reason))
    return decision


def schedule(placement_assignments: Iterable[tuple[str, str]], pending_reasons: Mapping[str, str], jobs_by_id: Mapping[str, Job], now: float) -> Decision:
    """Turn a placement into SCHEDULED jobs with start orders; pass on the reasons
    the others wait, where they changed."""
    decision = Decision()
    for job_id, site_id in placement_assignments:
        job = jobs_by_id[job_id]
        # A Serve service's new run starts at its fewest replicas, with no demand read yet.
        fresh = dict(replicas=0, requests_per_s=0.0, endpoint="")
        reason = f"placed on {site_id} ({job.spec.total_gpus} GPUs)"
        waits = [run for site, run in job.lingering if site == site_id]
        if waits:
            reason += f"; starts once {', '.join(waits)} there is confirmed stopped"
        scheduled, event = transition(job, S.SCHEDULED, reason, now, site_id=site_id, attempt=job.attempt + 1, **fresh)
        decision.record(scheduled, event)
        if not _waits_on(scheduled, site_id):  # else its start waits for the lingering run's end (the fence)
            decision.orders.append(start_order(scheduled))
    for job_id, reason in pending_reasons.items():
        job = jobs_by_id[job_id]
        if job.pending_reason != reason:
            decision.pending_reasons[job_id] = reason
    return decision


__all__ = [
    "RunReport",
    "RunState",
    "StartRun",
    "StopRun",
    "cancel",
    "enforce_max_runtime",
    "lose_run",
    "overdue_preemptions",
    "preempt",
    "preempted_run_gone",
    "on_register",
    "on_run_report",
    "on_run_reports",
    "release_site",
    "schedule",
]
