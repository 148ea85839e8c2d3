"""Conversion between protobuf messages (scheduler.api.v1) and core dataclasses.

The only module that knows both worlds; the round trip spec -> proto -> spec is
tested. Enum values share numbers on both sides (proto's 0 is UNSPECIFIED).
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from scheduler.api.v1 import agent_pb2, operator_pb2, types_pb2
from scheduler.core.errors import InvalidArgument, shown
from scheduler.core.jobs import DEFAULT_CHECKPOINT_GRACE_S, Job, JobEvent, JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunProgress, RunReport, RunState, ServeLoad
from scheduler.core.sites import GpuNode, Site, SiteState

DEFAULT_MAX_RETRIES = 3
# What a protobuf Timestamp can hold: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_S = -62_135_596_800
MAX_TIMESTAMP_S = 253_402_300_799


def timestamp(seconds: float) -> Timestamp:
    """Epoch seconds as a Timestamp, clamped to what one can hold (a float read from the
    latest valid Timestamp may round past it)."""
    ts = Timestamp()
    ts.FromNanoseconds(max(MIN_TIMESTAMP_S * 10**9, min(int(seconds * 1e9), MAX_TIMESTAMP_S * 10**9 + 999_999_999)))
    return ts


def spec_from_proto(msg: types_pb2.JobSpec) -> JobSpec:
    if msg.kind not in (JobKind.TRAINING, JobKind.INFERENCE):
        raise InvalidArgument("spec.kind must be JOB_KIND_TRAINING or JOB_KIND_INFERENCE")
    return JobSpec(
        kind=JobKind(msg.kind),
        entrypoint=msg.entrypoint,
        resources=Resources(gpus=msg.resources.gpus, cpus=msg.resources.cpus, memory_bytes=msg.resources.memory_bytes),
        name=msg.name,
        env=dict(msg.env),
        replicas=msg.replicas or 1,
        priority=msg.priority,
        allowed_regions=tuple(dict.fromkeys(msg.allowed_regions)),
        labels=dict(msg.labels),
        max_runtime_s=msg.max_runtime_s,
        max_retries=msg.max_retries if msg.HasField("max_retries") else DEFAULT_MAX_RETRIES,
        slowdown_tolerance_pct=msg.slowdown_tolerance_pct,
        checkpoint_uri=msg.checkpoint_uri,
        checkpoint_grace_s=msg.checkpoint_grace_s if msg.HasField("checkpoint_grace_s") else DEFAULT_CHECKPOINT_GRACE_S,
        serve_import_path=msg.serve.import_path,
        min_replicas=msg.serve.min_replicas,
        max_replicas=msg.serve.max_replicas,
        target_rps_per_replica=msg.serve.target_rps_per_replica,
    )


def spec_to_proto(spec: JobSpec) -> types_pb2.JobSpec:
    return types_pb2.JobSpec(
        name=spec.name,
        kind=int(spec.kind),
        entrypoint=spec.entrypoint,
        env=spec.env,
        resources=types_pb2.Resources(gpus=spec.resources.gpus, cpus=spec.resources.cpus, memory_bytes=spec.resources.memory_bytes),
        replicas=spec.replicas,
        priority=spec.priority,
        allowed_regions=list(spec.allowed_regions),
        labels=spec.labels,
        max_runtime_s=spec.max_runtime_s,
        max_retries=spec.max_retries,
        slowdown_tolerance_pct=spec.slowdown_tolerance_pct,
        checkpoint_uri=spec.checkpoint_uri,
        checkpoint_grace_s=spec.checkpoint_grace_s,
        serve=types_pb2.ServeSpec(
            import_path=spec.serve_import_path,
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            target_rps_per_replica=spec.target_rps_per_replica,
        )
        if spec.serve_import_path
        else None,
    )


def checkpoint_to_proto(job: Job, uri: str = "") -> types_pb2.Checkpoint | None:
    """A training job's progress and latest checkpoint (None before its runs reported any)."""
    if not (job.progress_step or job.checkpoint_step or uri):
        return None
    return types_pb2.Checkpoint(
        step=job.progress_step,
        step_at=timestamp(job.progress_at) if job.progress_at else None,
        checkpoint_step=job.checkpoint_step,
        checkpoint_at=timestamp(job.checkpoint_at) if job.checkpoint_at else None,
        uri=uri,
    )


def job_to_proto(job: Job, checkpoint_uri: str = "") -> types_pb2.Job:
    """A job as tenants see it; `checkpoint_uri`: where a training job's checkpoints live."""
    return types_pb2.Job(
        job_id=job.job_id,
        tenant=job.tenant,
        client_request_id=job.client_request_id,
        spec=spec_to_proto(job.spec),
        state=int(job.state),
        reason=job.reason,
        pending_reason=job.pending_reason,
        site_id=job.site_id,
        run_id=job.run_id,
        attempt=job.attempt,
        created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at),
        last_event_id=job.last_event_id,
        preemptions=job.preemptions,
        checkpoint=checkpoint_to_proto(job, checkpoint_uri),
        replicas=job.current_replicas if job.spec.served else 0,
        requests_per_s=job.requests_per_s,
        endpoint=job.endpoint,
        power_fraction=job.power_fraction,
    )


def event_to_proto(event: JobEvent) -> types_pb2.JobEvent:
    return types_pb2.JobEvent(
        event_id=event.event_id,
        job_id=event.job_id,
        tenant=event.tenant,
        from_state=int(event.from_state) if event.from_state else 0,
        to_state=int(event.to_state),
        reason=event.reason,
        site_id=event.site_id,
        run_id=event.run_id,
        at=timestamp(event.at),
    )


def states_from_proto(values) -> frozenset[JobState]:
    try:
        return frozenset(JobState(v) for v in values)
    except ValueError as err:
        raise InvalidArgument(f"unknown job state in filter: {err}") from None


def run_report_from_proto(msg: agent_pb2.RunStatus) -> RunReport:
    if msg.state not in RunState._value2member_map_:
        raise InvalidArgument(f"run {shown(msg.run_id)}: unknown run state {msg.state}")
    progress = serve = None
    if msg.HasField("checkpoint"):
        c = msg.checkpoint
        step_at = seconds(c.step_at, field="checkpoint.step_at")
        progress = RunProgress(c.step, step_at, c.checkpoint_step, seconds(c.checkpoint_at, field="checkpoint.checkpoint_at"))
    if msg.replicas or msg.requests_per_s or msg.endpoint:
        serve = ServeLoad(max(0.0, msg.requests_per_s), msg.replicas, msg.endpoint[:512])
    return RunReport(run_id=msg.run_id, state=RunState(msg.state), message=msg.message[:2000], progress=progress, serve=serve)


def seconds(ts, default: float = 0.0, field: str = "timestamp") -> float:
    """A Timestamp as epoch seconds (`default` when unset); InvalidArgument naming `field`
    when it is not one protobuf can hold."""
    if not (ts.seconds or ts.nanos):
        return default
    if not (MIN_TIMESTAMP_S <= ts.seconds <= MAX_TIMESTAMP_S and 0 <= ts.nanos <= 999_999_999):
        raise InvalidArgument(
            f"{field} is not a valid timestamp: seconds must be within {MIN_TIMESTAMP_S}..{MAX_TIMESTAMP_S} "
            f"(years 1..9999) and nanos within 0..999999999, got seconds={ts.seconds}, nanos={ts.nanos}"
        )
    return ts.ToNanoseconds() / 1e9


def inventory_from_proto(msg: types_pb2.Inventory) -> tuple[GpuNode, ...]:
    return gpu_nodes_from_proto(msg.gpu_nodes)


def gpu_nodes_from_proto(nodes) -> tuple[GpuNode, ...]:
    """GpuNode messages (a Register's inventory, a NodesChanged) as core GpuNodes."""
    return tuple(GpuNode(node_id=n.node_id, gpu_model=n.gpu_model, gpus=n.gpus, cpus=n.cpus, memory_bytes=n.memory_bytes) for n in nodes)


def inventory_to_proto(nodes: tuple[GpuNode, ...]) -> types_pb2.Inventory:
    return types_pb2.Inventory(
        gpu_nodes=[types_pb2.GpuNode(node_id=n.node_id, gpu_model=n.gpu_model, gpus=n.gpus, cpus=n.cpus, memory_bytes=n.memory_bytes) for n in nodes]
    )


def site_to_proto(site: Site, state: SiteState, gpus_used: int, active_runs: int) -> operator_pb2.Site:
    return operator_pb2.Site(
        site_id=site.site_id,
        region=site.region,
        state=int(state),
        gpus_total=site.gpus_total,
        gpus_free=max(0, site.gpus_total - gpus_used),
        active_runs=active_runs,
        last_heartbeat=timestamp(site.last_seen),
        drain_reason=site.drain_reason,
    )
