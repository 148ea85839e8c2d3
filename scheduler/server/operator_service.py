"""powerplane.v1.OperatorService: sites, their inventory, runs and power; drain/undrain;
grid events in (PostGridEvent, idempotent by event id) and out (ListGridEvents)."""

from __future__ import annotations

from scheduler.api import convert
from scheduler.api.convert_power import fleet_power_to_proto, grid_event_from_proto, grid_status_to_proto
from scheduler.api.v1 import operator_pb2, operator_pb2_grpc
from scheduler.core.errors import InvalidArgument
from scheduler.core.grid import GridEventState
from scheduler.core.sites import Site
from scheduler.core.validation import check_ids
from scheduler.server.controller import Controller
from scheduler.server.interceptor import Authenticator


class OperatorService(operator_pb2_grpc.OperatorServiceServicer):
    def __init__(self, controller: Controller, auth: Authenticator):
        self.controller = controller
        self.auth = auth

    def _site_proto(self, site: Site, usage: dict[str, tuple[int, int]]) -> operator_pb2.Site:
        used, active = usage.get(site.site_id, (0, 0))
        msg = convert.site_to_proto(site, self.controller.site_state(site), used, active)
        power = self._power_proto(site.site_id)
        if power is not None:
            msg.power.CopyFrom(power)
        return msg

    def _power_proto(self, site_id: str) -> operator_pb2.SitePowerStatus | None:
        figures = self.controller.power.figures(site_id, self.controller.jobs, self.controller.clock())
        if figures is None:
            return None
        return operator_pb2.SitePowerStatus(
            cap_w=figures.cap_w,
            interconnect_cap_w=figures.interconnect_cap_w,
            committed_w=figures.committed_w,
            measured_w=figures.measured_w,
            ai_w=figures.ai_w,
            mining_w=figures.mining_w,
            mining_target_w=figures.mining_target_w,
            price_usd_per_mwh=figures.price_usd_per_mwh,
            emergency=figures.emergency,
            fleets=[fleet_power_to_proto(fleet_id, measured, target) for fleet_id, measured, target in figures.fleets],
        )

    async def ListSites(self, request, context) -> operator_pb2.ListSitesResponse:
        self.auth.of(context, "operator")
        usage = self.controller.site_usage()
        sites = sorted(self.controller.sites.values(), key=lambda s: s.site_id)
        return operator_pb2.ListSitesResponse(sites=[self._site_proto(s, usage) for s in sites])

    async def GetSite(self, request, context) -> operator_pb2.SiteDetail:
        self.auth.of(context, "operator")
        site = self.controller.site(request.site_id)
        runs = [
            operator_pb2.SiteRun(run_id=j.run_id, job_id=j.job_id, tenant=j.tenant, state=int(j.state), gpus=j.total_gpus, power_fraction=j.power_fraction)
            for j in sorted(self.controller.runs_on(site.site_id), key=lambda j: j.seq)
        ]
        return operator_pb2.SiteDetail(
            site=self._site_proto(site, self.controller.site_usage()), inventory=convert.inventory_to_proto(site.inventory), runs=runs
        )

    async def DrainSite(self, request, context) -> operator_pb2.Site:
        operator = self.auth.of(context, "operator")
        if len(request.reason) > 512:
            raise InvalidArgument("reason is longer than 512 characters")
        site = await self.controller.set_drained(request.site_id, True, request.reason or f"drained by {operator.name}")
        return self._site_proto(site, self.controller.site_usage())

    async def UndrainSite(self, request, context) -> operator_pb2.Site:
        self.auth.of(context, "operator")
        site = await self.controller.set_drained(request.site_id, False, "")
        return self._site_proto(site, self.controller.site_usage())

    async def PostGridEvent(self, request, context) -> operator_pb2.GridEventStatus:
        self.auth.of(context, "operator")
        check_ids(event_id=request.event_id, site_id=request.site_id)
        now = self.controller.clock()
        record, _ = await self.controller.post_grid_event(grid_event_from_proto(request, now))
        return grid_status_to_proto(record, now, self.controller.power.met(record))

    async def ListGridEvents(self, request, context) -> operator_pb2.ListGridEventsResponse:
        self.auth.of(context, "operator")
        check_ids(site_id=request.site_id)
        now = self.controller.clock()
        power = self.controller.power
        found = []
        for record in sorted(power.grid.values(), key=lambda r: (r.received_at, r.event.event_id)):
            event = record.event
            if request.site_id and event.site_id != request.site_id:
                continue
            if request.active_only and event.state(now) == GridEventState.ENDED:
                continue
            found.append(grid_status_to_proto(record, now, power.met(record)))
        return operator_pb2.ListGridEventsResponse(events=found[-1000:])
