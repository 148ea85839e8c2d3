"""GetJobLogs: a job's Ray job logs, read through its site's agent, and the requests
waiting for the agents' answers.

The job's current run (or its latest: a finished or requeued job keeps its last run and
site) is asked of the agent connected for its site with a FetchRunLogs on the agent's
stream, under a fresh request id; the agent's RunLogs with that id, on that same stream,
answers it. The wait is bounded: the caller's deadline, at most `max_wait_s` (10 s).
UNAVAILABLE when the site's agent is not connected, when its stream ends before the
answer, when it does not answer in time, when Ray could not be read, and when the site
already has `per_site` requests waiting; FAILED_PRECONDITION for a job that has not run
yet, for a Serve inference job (its output is in Ray Serve's logs, not a Ray job's) and
for a run whose Ray job is gone. Who may read which job is the caller's business
(tenant_service.py: the caller's own, NOT_FOUND otherwise; operator_service.py: any).
Nothing here is stored: a request lives only while its caller waits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from scheduler.api import convert
from scheduler.api.v1 import logs_pb2
from scheduler.core.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable, shown
from scheduler.core.jobs import Job
from scheduler.core.run_logs import DEFAULT_MAX_BYTES, DEFAULT_TAIL_LINES, MAX_BYTES, FetchRunLogs, RunLogs, tail
from scheduler.core.validation import check_ids
from scheduler.server.controller import AgentSession, Controller

log = logging.getLogger(__name__)
MAX_WAIT_S = 10.0
PER_SITE = 8  # requests waiting on one agent at once
DEADLINE_MARGIN_S = 0.2  # answer the caller this long before its deadline


@dataclass
class _Pending:
    session: AgentSession
    answer: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class LogRequests:
    """The requests waiting for an agent's RunLogs, by request id."""

    def __init__(self, controller: Controller, max_wait_s: float = MAX_WAIT_S, per_site: int = PER_SITE):
        self.controller = controller
        self.max_wait_s = max_wait_s
        self.per_site = per_site
        self.pending: dict[str, _Pending] = {}

    async def job_logs(self, job: Job, request: logs_pb2.GetJobLogsRequest, time_left_s: float | None = None) -> logs_pb2.JobLogs:
        """The end of `job`'s current or latest run's logs (the caller has checked it may read the job)."""
        if request.max_bytes > MAX_BYTES:
            raise InvalidArgument(f"max_bytes is {request.max_bytes}; at most {MAX_BYTES}")
        lines = request.tail_lines if request.HasField("tail_lines") else DEFAULT_TAIL_LINES
        max_bytes = request.max_bytes or DEFAULT_MAX_BYTES
        if not job.run_id:
            raise FailedPrecondition(f"job {job.job_id} has not run yet ({job.state.name}); it has no logs")
        if job.spec.served:
            raise FailedPrecondition(f"job {job.job_id} runs on Ray Serve: its replicas' output is in Ray Serve's logs on site {job.site_id}, not in a Ray job's")
        wait_s = self.max_wait_s if time_left_s is None else min(self.max_wait_s, max(0.05, time_left_s - DEADLINE_MARGIN_S))
        answer = await self.fetch(job.site_id, job.run_id, lines, max_bytes, wait_s)
        text, cut = tail(answer.text, lines, max_bytes)  # an agent's answer is held to the request too
        return logs_pb2.JobLogs(
            job_id=job.job_id,
            run_id=job.run_id,
            site_id=job.site_id,
            text=text,
            truncated=answer.truncated or cut,
            fetched_at=convert.timestamp(self.controller.clock()),
        )

    async def fetch(self, site_id: str, run_id: str, lines: int, max_bytes: int, wait_s: float) -> RunLogs:
        """Ask `site_id`'s agent for run `run_id`'s logs and wait `wait_s` at most for its answer."""
        session = self.controller.sessions.get(site_id)
        if session is None:
            raise Unavailable(f"site {site_id}'s agent is not connected; run {run_id}'s logs can be read only through it (try again once the site is back)")
        if sum(p.session is session for p in self.pending.values()) >= self.per_site:
            raise Unavailable(f"site {site_id}'s agent has {self.per_site} log requests waiting already; try again shortly")
        request_id = uuid.uuid4().hex
        pending = self.pending[request_id] = _Pending(session)
        try:
            session.send(FetchRunLogs(site_id, request_id, run_id, lines, max_bytes))
            answer = await asyncio.wait_for(pending.answer, wait_s)
        except TimeoutError:
            raise Unavailable(
                f"site {site_id}'s agent did not answer with run {run_id}'s logs within {wait_s:.3g} s (an agent older than this scheduler never does); try again"
            ) from None
        finally:
            self.pending.pop(request_id, None)
        if answer is None:
            raise Unavailable(f"site {site_id}'s agent disconnected before it answered with run {run_id}'s logs; try again once it is back")
        if answer.missing:
            raise FailedPrecondition(f"site {site_id} no longer has run {run_id}'s logs: {answer.error}")
        if answer.error:
            raise Unavailable(f"site {site_id} could not read run {run_id}'s logs: {answer.error}")
        return answer

    def answered(self, session: AgentSession, answer: RunLogs) -> None:
        """An agent's RunLogs: it answers the request of that id sent on this same stream (others are ignored)."""
        pending = self.pending.get(answer.request_id)
        if pending is None or pending.session is not session or pending.answer.done():
            log.debug("site %s answered log request %s, which no one waits for (any more)", session.site_id, shown(answer.request_id))
            return
        pending.answer.set_result(answer)

    def session_ended(self, session: AgentSession) -> None:
        """The agent's stream ended: its requests will never be answered."""
        for pending in self.pending.values():
            if pending.session is session and not pending.answer.done():
                pending.answer.set_result(None)


async def any_job(controller: Controller, job_id: str) -> Job:
    """Any tenant's job (an operator's read), from memory or, paged out, from the store."""
    check_ids(job_id=job_id)
    job = controller.jobs.get(job_id)
    if job is None and controller.resident.paged:
        job = await controller.committer.read(controller.committer.store.get_job, job_id)
    if job is None:
        raise NotFound(f"job {shown(job_id)} not found")
    return job
