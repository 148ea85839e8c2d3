"""powerplane.v1.TenantService: thin adapter from gRPC to the controller.
A tenant only ever reaches its own jobs; another tenant's job reads as NOT_FOUND."""

from __future__ import annotations

import asyncio

import grpc

from scheduler.api import convert
from scheduler.api.v1 import tenant_pb2, tenant_pb2_grpc, types_pb2
from scheduler.core.errors import InvalidArgument, NotFound, OutOfRange, shown
from scheduler.core.jobs import Job
from scheduler.server.controller import Controller
from scheduler.server.interceptor import Authenticator
from scheduler.server.log_requests import LogRequests
from scheduler.server.usage_reads import usage
from scheduler.server.views import Views

MAX_PAGE = 1000
DEFAULT_PAGE = 100
BACKLOG_CHUNK = 1000


class TenantService(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self, controller: Controller, auth: Authenticator, views: Views | None = None, logs: LogRequests | None = None):
        self.controller = controller
        self.auth = auth
        self.views = views or Views(controller)
        self.logs = logs or LogRequests(controller)  # shared with the AgentService, which hands it the answers

    def _tenant(self, context) -> str:
        return self.auth.of(context, "tenant").name

    def _job(self, job: Job) -> types_pb2.Job:
        return self.views.job(job)

    async def SubmitJob(self, request: tenant_pb2.SubmitJobRequest, context) -> tenant_pb2.SubmitJobResponse:
        tenant = self._tenant(context)
        if not request.HasField("spec"):
            raise InvalidArgument("spec is required")
        spec = convert.spec_from_proto(request.spec)
        job, created = await self.controller.submit(tenant, request.client_request_id, spec)
        return tenant_pb2.SubmitJobResponse(job=self._job(job), created=created)

    async def GetJob(self, request: tenant_pb2.GetJobRequest, context) -> types_pb2.Job:
        return self._job(await self.controller.job_of(self._tenant(context), request.job_id))

    async def ListJobs(self, request: tenant_pb2.ListJobsRequest, context) -> tenant_pb2.ListJobsResponse:
        tenant = self._tenant(context)
        if request.page_size > MAX_PAGE:
            raise InvalidArgument(f"page_size is {request.page_size}; at most {MAX_PAGE}")
        states = convert.states_from_proto(request.states)
        jobs, token = await self.controller.list_jobs(tenant, states, request.page_size or DEFAULT_PAGE, request.page_token)
        return tenant_pb2.ListJobsResponse(jobs=[self._job(j) for j in jobs], next_page_token=token)

    async def CancelJob(self, request: tenant_pb2.CancelJobRequest, context) -> types_pb2.Job:
        if len(request.reason) > 512:
            raise InvalidArgument("reason is longer than 512 characters")
        job = await self.controller.cancel(self._tenant(context), request.job_id, request.reason)
        return self._job(job)

    async def ReprioritizeJob(self, request: tenant_pb2.ReprioritizeJobRequest, context) -> types_pb2.Job:
        """A write: one of the caller's jobs at a new priority."""
        return self._job(await self.controller.reprioritize(self._tenant(context), request.job_id, request.priority))

    async def CancelJobs(self, request: tenant_pb2.CancelJobsRequest, context) -> tenant_pb2.CancelJobsResponse:
        """A write (a dry run reads only): cancel the caller's jobs matching the label selector."""
        tenant = self._tenant(context)
        if len(request.reason) > 512:
            raise InvalidArgument("reason is longer than 512 characters")
        states = convert.states_from_proto(request.states)
        jobs, matched = await self.controller.cancel_jobs(tenant, dict(request.selector), states, request.reason, request.dry_run)
        return tenant_pb2.CancelJobsResponse(jobs=[self._job(j) for j in jobs], matched=matched, more=matched > len(jobs))

    async def GetJobLogs(self, request, context):
        """The caller's own job's logs, through its site's agent (log_requests.py); another tenant's job is NOT_FOUND."""
        job = await self.controller.job_of(self._tenant(context), request.job_id)
        return await self.logs.job_logs(job, request, context.time_remaining())

    async def WatchJobs(self, request: tenant_pb2.WatchJobsRequest, context):
        """Backlog from the store, then live events; no gap, no duplicate."""
        tenant = self._tenant(context)
        if request.job_id:
            await self.controller.job_of(tenant, request.job_id)  # NOT_FOUND for someone else's job
        store = self.controller.committer
        compacted = await store.read(store.store.compacted_through)
        if 0 < request.after_event_id < compacted:
            raise OutOfRange(
                f"events up to {compacted} were compacted away (retention keeps the newest {self.controller.config.retention.events}); "
                f"resume with after_event_id={compacted} and read the jobs' current state with GetJob or ListJobs"
            )
        watcher = self.controller.watch(tenant, request.job_id)  # subscribe before reading the backlog
        last = request.after_event_id
        try:
            while True:
                backlog = await store.read(store.store.events_after, tenant, last, request.job_id, BACKLOG_CHUNK)
                for event in backlog:
                    yield convert.event_to_proto(event)
                    last = event.event_id
                if len(backlog) < BACKLOG_CHUNK:
                    break
            while True:
                event = await watcher.queue.get()
                if event is None:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler shutting down; resume from your last event id")
                if event.event_id <= last:
                    continue
                yield convert.event_to_proto(event)
                last = event.event_id
                if watcher.overflowed and watcher.queue.empty():
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"watcher fell behind; resume with after_event_id={last}")
        except asyncio.CancelledError:
            raise
        finally:
            self.controller.unwatch(watcher)

    async def GetUsage(self, request, context):
        """The caller's own usage; asking for another tenant's reads as NOT_FOUND, as its jobs do."""
        tenant = self._tenant(context)
        if request.tenant and request.tenant != tenant:
            raise NotFound(f"no tenant {shown(request.tenant)}")
        return await usage(self.controller, tenant, request, known_tenant=True)
