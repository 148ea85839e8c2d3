"""powerplane.v1.OperatorService: sites, their inventory and runs, drain/undrain."""

from __future__ import annotations

from scheduler.api import convert
from scheduler.api.v1 import operator_pb2, operator_pb2_grpc
from scheduler.core.errors import InvalidArgument
from scheduler.core.sites import Site
from scheduler.server.controller import Controller
from scheduler.server.interceptor import Authenticator


class OperatorService(operator_pb2_grpc.OperatorServiceServicer):
    def __init__(self, controller: Controller, auth: Authenticator):
        self.controller = controller
        self.auth = auth

    def _site_proto(self, site: Site, usage: dict[str, tuple[int, int]]) -> operator_pb2.Site:
        used, active = usage.get(site.site_id, (0, 0))
        return convert.site_to_proto(site, self.controller.site_state(site), used, active)

    async def ListSites(self, request, context) -> operator_pb2.ListSitesResponse:
        self.auth.of(context, "operator")
        usage = self.controller.site_usage()
        sites = sorted(self.controller.sites.values(), key=lambda s: s.site_id)
        return operator_pb2.ListSitesResponse(sites=[self._site_proto(s, usage) for s in sites])

    async def GetSite(self, request, context) -> operator_pb2.SiteDetail:
        self.auth.of(context, "operator")
        site = self.controller.site(request.site_id)
        runs = [
            operator_pb2.SiteRun(run_id=j.run_id, job_id=j.job_id, tenant=j.tenant, state=int(j.state), gpus=j.spec.total_gpus)
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
