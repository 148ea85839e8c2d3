"""powerplane.v1.OperatorService: sites, their inventory, runs and power; drain/undrain;
grid events in (PostGridEvent, idempotent by event id, modified by a higher modification
number; EndGridEvent ends one early) and out (ListGridEvents); the
power snapshot stream (WatchSites); ReloadConfig (scheduler/server/reload.py); any job's
logs (GetJobLogs: scheduler/server/log_requests.py). What it shows is built by `views.Views`."""

from __future__ import annotations

from scheduler.api.convert import seconds, timestamp
from scheduler.api.convert_power import grid_event_from_proto, grid_status_to_proto
from scheduler.api.v1 import operator_pb2, operator_pb2_grpc
from scheduler.core.errors import FailedPrecondition, InvalidArgument
from scheduler.core.validation import check_ids
from scheduler.server.controller import Controller
from scheduler.server.interceptor import Authenticator
from scheduler.server.log_requests import LogRequests, any_job
from scheduler.server.usage_reads import usage
from scheduler.server.views import Views


class OperatorService(operator_pb2_grpc.OperatorServiceServicer):
    def __init__(self, controller: Controller, auth: Authenticator, views: Views | None = None, reloader=None, logs: LogRequests | None = None):
        self.controller = controller
        self.auth = auth
        self.views = views or Views(controller)
        self.reloader = reloader  # reload.Reloader, or None: started without a config file
        self.logs = logs or LogRequests(controller)  # shared with the AgentService, which hands it the answers

    async def ListSites(self, request, context) -> operator_pb2.ListSitesResponse:
        self.auth.of(context, "operator")
        return operator_pb2.ListSitesResponse(sites=self.views.sites())

    async def GetSite(self, request, context) -> operator_pb2.SiteDetail:
        self.auth.of(context, "operator")
        return self.views.site_detail(self.controller.site(request.site_id))

    async def DrainSite(self, request, context) -> operator_pb2.Site:
        operator = self.auth.of(context, "operator")
        if len(request.reason) > 512:
            raise InvalidArgument("reason is longer than 512 characters")
        site = await self.controller.set_drained(request.site_id, True, request.reason or f"drained by {operator.name}")
        return self.views.site(site)

    async def UndrainSite(self, request, context) -> operator_pb2.Site:
        self.auth.of(context, "operator")
        site = await self.controller.set_drained(request.site_id, False, "")
        return self.views.site(site)

    async def PostGridEvent(self, request, context) -> operator_pb2.GridEventStatus:
        operator = self.auth.of(context, "operator")
        check_ids(event_id=request.event_id, site_id=request.site_id)
        now = self.controller.clock()
        record, _ = await self.controller.post_grid_event(grid_event_from_proto(request, now), by=operator.name)
        return grid_status_to_proto(record, now, self.controller.power.met(record))

    async def EndGridEvent(self, request, context) -> operator_pb2.GridEventStatus:
        operator = self.auth.of(context, "operator")
        check_ids(event_id=request.event_id)
        if len(request.reason) > 512:
            raise InvalidArgument("reason is longer than 512 characters")
        end = seconds(request.end, field="end") if request.HasField("end") else None
        reason = f"by {operator.name}" + (f": {request.reason}" if request.reason else "")
        record = await self.controller.end_grid_event(request.event_id, end, reason)
        now = self.controller.clock()
        return grid_status_to_proto(record, now, self.controller.power.met(record))

    async def ListGridEvents(self, request, context) -> operator_pb2.ListGridEventsResponse:
        self.auth.of(context, "operator")
        check_ids(site_id=request.site_id)
        return operator_pb2.ListGridEventsResponse(events=self.views.grid_events(request.site_id, request.active_only)[-1000:])

    async def WatchSites(self, request, context):
        """A snapshot now, then one after each change (coalesced) and at least every refresh_s."""
        self.auth.of(context, "operator")
        if not (0 <= request.min_interval_s <= 3600 and 0 <= request.refresh_s <= 3600):
            raise InvalidArgument("min_interval_s and refresh_s must be between 0 and 3600 seconds")
        async for _ in self.controller.changes.follow(request.min_interval_s, request.refresh_s):
            yield self.views.snapshot()

    async def GetTenantUsage(self, request, context):
        self.auth.of(context, "operator")
        return await usage(self.controller, request.tenant, request, known_tenant=False)

    async def GetJobLogs(self, request, context):
        """Any job's logs, through its site's agent (log_requests.py)."""
        self.auth.of(context, "operator")
        return await self.logs.job_logs(await any_job(self.controller, request.job_id), request, context.time_remaining())

    async def ReloadConfig(self, request, context) -> operator_pb2.ReloadConfigResponse:
        operator = self.auth.of(context, "operator")
        if self.reloader is None:
            raise FailedPrecondition("this scheduler was started without a config file; there is nothing to reload")
        result = self.reloader.reload(dry_run=request.dry_run, by=f"operator {operator.name}")
        response = operator_pb2.ReloadConfigResponse(changed_sections=result.changed, refused=result.refused, config_sha256=result.sha256)
        if result.applied_at is not None:
            response.applied_at.CopyFrom(timestamp(result.applied_at))
        return response
