"""A small synchronous client for Powerplane's tenant and operator APIs, used by the
CLI, the demo, the tests and the benchmarks. Any gRPC client works as well: the
server offers reflection.

The target may list several scheduler replicas (`host:port,host:port`): a call refused
UNAVAILABLE goes again to the leader the refusal named, else to the next address
(scheduler/api/leader.py); every call it retries is idempotent (a submission keeps its
client_request_id). Streams are not retried here: a caller that reopens one calls
`follow(err)` first."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc

from scheduler.api.convert import timestamp
from scheduler.api.leader import Targets, leader_hint
from scheduler.api.v1 import logs_pb2, operator_pb2, operator_pb2_grpc, tenant_pb2, tenant_pb2_grpc, types_pb2, usage_pb2


def channel(target: str, tls_ca: bytes | None = None, tls_identity: tuple[bytes, bytes] | None = None) -> grpc.Channel:
    """`tls_identity`: (key, certificate) to present to a scheduler requiring mutual TLS."""
    if tls_ca is not None or tls_identity is not None:
        key, cert = tls_identity or (None, None)
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(tls_ca, key, cert))
    return grpc.insecure_channel(target)


class Client:
    def __init__(self, target: str, token: str, tls_ca: bytes | None = None, timeout_s: float = 30.0, tls_identity: tuple[bytes, bytes] | None = None):
        self.targets = Targets(target)
        self._tls_ca = tls_ca
        self._tls_identity = tls_identity
        self._metadata = (("authorization", f"Bearer {token}"),)
        self.timeout_s = timeout_s
        self._connect()

    def _connect(self) -> None:
        self._channel = channel(self.targets.current, self._tls_ca, self._tls_identity)
        self.tenant = tenant_pb2_grpc.TenantServiceStub(self._channel)
        self.operator = operator_pb2_grpc.OperatorServiceStub(self._channel)

    def follow(self, err: grpc.RpcError) -> bool:
        """After a refused call: connect to the leader it named, or to the next address.
        Returns whether trying again elsewhere makes sense."""
        if len(self.targets.addresses) == 1 and not leader_hint(err):
            return False  # one address and no leader named: nowhere else to go
        before = self.targets.current
        if not self.targets.follow(err):
            return False
        if self.targets.current != before:
            self._channel.close()
            self._connect()
        return True

    def _call(self, service: str, method: str, request):
        """A unary call, following a standby's hint or the next address on UNAVAILABLE."""
        tries = len(self.targets.addresses) + 1
        for attempt in range(tries):
            stub = self.tenant if service == "tenant" else self.operator
            try:
                return getattr(stub, method)(request, metadata=self._metadata, timeout=self.timeout_s)
            except grpc.RpcError as err:
                if attempt + 1 == tries or not self.follow(err):
                    raise
                time.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, spec: types_pb2.JobSpec, client_request_id: str = "") -> tenant_pb2.SubmitJobResponse:
        request = tenant_pb2.SubmitJobRequest(client_request_id=client_request_id or uuid.uuid4().hex, spec=spec)
        return self._call("tenant", "SubmitJob", request)

    def get(self, job_id: str) -> types_pb2.Job:
        return self._call("tenant", "GetJob", tenant_pb2.GetJobRequest(job_id=job_id))

    def list(self, states=(), page_size: int = 0, page_token: str = "") -> tenant_pb2.ListJobsResponse:
        request = tenant_pb2.ListJobsRequest(states=list(states), page_size=page_size, page_token=page_token)
        return self._call("tenant", "ListJobs", request)

    def list_all(self, states=(), page_size: int = 500) -> Iterator[types_pb2.Job]:
        token = ""
        while True:
            page = self.list(states, page_size, token)
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def cancel(self, job_id: str, reason: str = "") -> types_pb2.Job:
        return self._call("tenant", "CancelJob", tenant_pb2.CancelJobRequest(job_id=job_id, reason=reason))

    def reprioritize(self, job_id: str, priority: int) -> types_pb2.Job:
        return self._call("tenant", "ReprioritizeJob", tenant_pb2.ReprioritizeJobRequest(job_id=job_id, priority=priority))

    def cancel_jobs(self, selector: dict[str, str], states=(), reason: str = "", dry_run: bool = False) -> tenant_pb2.CancelJobsResponse:
        request = tenant_pb2.CancelJobsRequest(selector=selector, states=list(states), reason=reason, dry_run=dry_run)
        return self._call("tenant", "CancelJobs", request)

    def logs(self, job_id: str, tail_lines: int | None = None, max_bytes: int = 0) -> logs_pb2.JobLogs:
        """The end of the Ray job logs of the job's current (or latest) run, read through its
        site's agent: the last `tail_lines` lines (None: 1000; 0: all) within `max_bytes` (0: 1 MiB).
        A tenant token reads its own jobs' (TenantService), an operator token any job's (OperatorService)."""
        request = logs_pb2.GetJobLogsRequest(job_id=job_id, tail_lines=tail_lines, max_bytes=max_bytes)
        try:
            return self._call("tenant", "GetJobLogs", request)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
        return self._call("operator", "GetJobLogs", request)

    def watch(self, after_event_id: int = 0, job_id: str = "", timeout_s: float | None = None):
        """The server stream of job events (iterate it; call .cancel() to stop)."""
        request = tenant_pb2.WatchJobsRequest(after_event_id=after_event_id, job_id=job_id)
        return self.tenant.WatchJobs(request, metadata=self._metadata, timeout=timeout_s)

    def sites(self) -> operator_pb2.ListSitesResponse:
        return self._call("operator", "ListSites", operator_pb2.ListSitesRequest())

    def site(self, site_id: str) -> operator_pb2.SiteDetail:
        return self._call("operator", "GetSite", operator_pb2.GetSiteRequest(site_id=site_id))

    def drain(self, site_id: str, reason: str = "") -> operator_pb2.Site:
        return self._call("operator", "DrainSite", operator_pb2.DrainSiteRequest(site_id=site_id, reason=reason))

    def undrain(self, site_id: str) -> operator_pb2.Site:
        return self._call("operator", "UndrainSite", operator_pb2.UndrainSiteRequest(site_id=site_id))

    def watch_sites(self, min_interval_s: float = 0.0, refresh_s: float = 0.0, timeout_s: float | None = None):
        """The server stream of power snapshots (every site's power and runs, the grid events,
        the jobs not yet ended): one now, then one after each change, at most one per
        `min_interval_s` and at least one per `refresh_s` (0: the server's defaults, 0.5 s and
        5 s). Operator tokens only. Iterate it; call .cancel() to stop."""
        request = operator_pb2.WatchSitesRequest(min_interval_s=min_interval_s, refresh_s=refresh_s)
        return self.operator.WatchSites(request, metadata=self._metadata, timeout=timeout_s)

    def post_grid_event(self, event: operator_pb2.GridEvent) -> operator_pb2.GridEventStatus:
        return self._call("operator", "PostGridEvent", event)

    def end_grid_event(self, event_id: str, end: float | None = None, reason: str = "") -> operator_pb2.GridEventStatus:
        request = operator_pb2.EndGridEventRequest(event_id=event_id, reason=reason)
        if end is not None:
            request.end.FromNanoseconds(int(end * 1e9))
        return self._call("operator", "EndGridEvent", request)

    def grid_events(self, site_id: str = "", active_only: bool = False) -> operator_pb2.ListGridEventsResponse:
        request = operator_pb2.ListGridEventsRequest(site_id=site_id, active_only=active_only)
        return self._call("operator", "ListGridEvents", request)

    def reload_config(self, dry_run: bool = False) -> operator_pb2.ReloadConfigResponse:
        return self._call("operator", "ReloadConfig", operator_pb2.ReloadConfigRequest(dry_run=dry_run))

    def replica(self, address: str) -> Client:
        """A client with the same token and TLS settings for the replica at `address` only."""
        token = self._metadata[0][1].removeprefix("Bearer ")
        return Client(address, token, self._tls_ca, self.timeout_s, self._tls_identity)

    def usage(self, tenant: str, start: float, end: float, max_jobs: int = 0) -> usage_pb2.Usage:
        """A tenant's usage over [start, end) (epoch seconds): a tenant token reads its own
        (TenantService), an operator token any tenant's (OperatorService)."""
        request = usage_pb2.GetUsageRequest(tenant=tenant, to=timestamp(end), max_jobs=max_jobs, **{"from": timestamp(start)})
        try:
            return self._call("tenant", "GetUsage", request)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
        return self._call("operator", "GetTenantUsage", request)


def spec(entrypoint: str, gpus: int = 1, kind: int = types_pb2.JOB_KIND_TRAINING, **fields) -> types_pb2.JobSpec:
    """Build a JobSpec; `cpus` and `memory_bytes` go into resources, the rest are JobSpec fields."""
    resources = types_pb2.Resources(gpus=gpus, cpus=fields.pop("cpus", 0.0), memory_bytes=fields.pop("memory_bytes", 0))
    return types_pb2.JobSpec(entrypoint=entrypoint, kind=kind, resources=resources, **fields)
