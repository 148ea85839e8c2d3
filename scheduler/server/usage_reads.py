"""Usage reports for GetUsage / GetTenantUsage: checks the window, reads the tenant's job
events from the store in pages (from the start of the log up to the window's end) and the
GPUs of their jobs (memory, else the store), and adds them up with core/usage.py.

A read only: it never changes the controller's state. Bounded: a window of at most
MAX_WINDOW_S, at most MAX_EVENTS events read (past that the request is refused with a
message saying so), the job list cut to max_jobs. Site power settings are those of the
sites the scheduler knows now (a site never registered since the start is reported in
`unknown_sites`, its runs' energy not counted).
"""

from __future__ import annotations

from scheduler.api.convert import seconds, timestamp
from scheduler.api.v1 import usage_pb2
from scheduler.core.errors import FailedPrecondition, InvalidArgument, NotFound, shown
from scheduler.core.usage import J_PER_MWH, UsageFigures, tenant_usage
from scheduler.core.validation import check_ids
from scheduler.server.controller import Controller

MAX_WINDOW_S = 366 * 86400.0
MAX_EVENTS = 500_000
PAGE = 1000
DEFAULT_JOBS = 100
MAX_JOBS = 1000


async def usage(controller: Controller, tenant: str, request: usage_pb2.GetUsageRequest, known_tenant: bool) -> usage_pb2.Usage:
    """The tenant's usage over the request's window. `known_tenant`: the caller vouches
    for it (a tenant asking for its own); else a tenant the scheduler has no token and no
    job for is NOT_FOUND."""
    check_ids(tenant=tenant)
    if not tenant:
        raise InvalidArgument("tenant is required")
    if not (request.HasField("from") and request.HasField("to")):
        raise InvalidArgument("from and to are required")
    start, end = seconds(getattr(request, "from"), field="from"), seconds(request.to, field="to")
    now = controller.clock()
    if end <= start:
        raise InvalidArgument("to must be after from")
    if start >= now:
        raise InvalidArgument("the window starts in the future: nothing was used yet")
    if end - start > MAX_WINDOW_S:
        raise InvalidArgument(f"the window is longer than {MAX_WINDOW_S / 86400:.0f} days; ask for shorter ones")
    if request.max_jobs > MAX_JOBS:
        raise InvalidArgument(f"max_jobs is {request.max_jobs}; at most {MAX_JOBS}")
    end = min(end, now)
    store = controller.committer
    if not known_tenant and not await _tenant_exists(controller, tenant):
        raise NotFound(f"no tenant {shown(tenant)}")
    events, gpus, last = [], {}, 0
    while True:
        page = await store.read(store.store.events_after, tenant, last, "", PAGE)
        for job_id in {e.job_id for e in page} - gpus.keys():
            job = controller.jobs.get(job_id) or await store.read(store.store.get_job, job_id)
            gpus[job_id] = job.total_gpus if job is not None else 0
        events.extend(e for e in page if e.at < end)
        if len(page) < PAGE or page[-1].at >= end:
            break
        if len(events) >= MAX_EVENTS:
            raise FailedPrecondition(f"tenant {shown(tenant)} has more than {MAX_EVENTS} events before the window's end; ask for an earlier window")
        last = page[-1].event_id
    compacted = await store.read(store.store.compacted_through)
    sites = {site_id: st.power for site_id, st in controller.power.sites.items()}
    report = tenant_usage(tenant, events, lambda job_id: gpus.get(job_id, 0), sites, start, end, controller.config.accounting.rates(tenant))
    jobs = sorted(report.jobs, key=lambda item: (-item[1].gpu_s, item[0]))
    return usage_pb2.Usage(
        tenant=tenant,
        to=timestamp(end),
        totals=figures_to_proto(report.totals),
        price_usd_per_mwh=report.rates.price_usd_per_mwh,
        cost_usd=report.cost_usd,
        credit_usd_per_mwh=report.rates.credit_usd_per_mwh,
        credits_usd=report.credits_usd,
        jobs=[usage_pb2.JobUsage(job_id=job_id, figures=figures_to_proto(f)) for job_id, f in jobs[: request.max_jobs or DEFAULT_JOBS]],
        jobs_total=len(jobs),
        history_complete=compacted == 0,
        unknown_sites=report.unknown_sites,
        **{"from": timestamp(start)},
    )


def figures_to_proto(f: UsageFigures) -> usage_pb2.UsageFigures:
    return usage_pb2.UsageFigures(
        gpu_hours=f.gpu_s / 3600,
        capped_gpu_hours=f.capped_gpu_s / 3600,
        it_mwh=f.it_j / J_PER_MWH,
        meter_mwh=f.meter_mwh,
        curtailed_mwh=f.curtailed_mwh,
        power_caps=f.caps,
        preemptions=f.preemptions,
        preempted_gpu_hours=f.preempted_gpu_s / 3600,
    )


async def _tenant_exists(controller: Controller, tenant: str) -> bool:
    if tenant in controller.config.tenants or any(t == tenant for _, t in controller.jobs.counts()):
        return True
    store = controller.committer
    return bool(await store.read(store.store.tenant_jobs, tenant, 2**62, frozenset(), 1))

