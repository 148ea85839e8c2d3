"""How the CLI shows things: aligned tables for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.json_format import MessageToDict

from scheduler.api.v1 import types_pb2


def state_name(value: int, enum=types_pb2.JobState) -> str:
    name = enum.Name(value)
    return name.split("_STATE_", 1)[-1]


def kind_name(value: int) -> str:
    return types_pb2.JobKind.Name(value).removeprefix("JOB_KIND_")


def when(ts) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def as_json(message_or_list) -> str:
    if isinstance(message_or_list, list):
        return json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in message_or_list], indent=2)
    return json.dumps(MessageToDict(message_or_list, preserving_proto_field_name=True), indent=2)


def jobs_table(jobs: Sequence[types_pb2.Job]) -> str:
    rows = []
    for job in jobs:
        why = job.pending_reason if job.state == types_pb2.JOB_STATE_PENDING else job.reason
        rows.append(
            [
                job.job_id,
                job.spec.name or "-",
                kind_name(job.spec.kind),
                state_name(job.state),
                job.spec.resources.gpus * max(1, job.replicas if job.spec.serve.import_path else job.spec.replicas),
                job.site_id or "-",
                why[:70],
            ]
        )
    return table(["JOB", "NAME", "KIND", "STATE", "GPUS", "SITE", "REASON"], rows)


def job_detail(job: types_pb2.Job) -> str:
    spec = job.spec
    lines = [
        ("job", job.job_id),
        ("name", spec.name or "-"),
        ("tenant", job.tenant),
        ("kind", kind_name(spec.kind)),
        ("state", state_name(job.state)),
        ("reason", job.reason),
        ("pending reason", job.pending_reason or "-"),
        ("site", job.site_id or "-"),
        ("run", job.run_id or "-"),
        ("attempt", f"{job.attempt} ({job.preemptions} preempted)" if job.preemptions else job.attempt),
        ("gpus", f"{spec.resources.gpus} x {max(1, spec.replicas)} replica(s)"),
        *_serve_lines(job),
        *_checkpoint_lines(job),
        ("priority", spec.priority),
        ("regions", ", ".join(spec.allowed_regions) or "any"),
        ("entrypoint", spec.entrypoint),
        ("created", when(job.created_at)),
        ("updated", when(job.updated_at)),
        ("last event", job.last_event_id),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)


def _serve_lines(job: types_pb2.Job) -> list[tuple[str, str]]:
    """A Serve inference job: its application, size, demand and where it answers."""
    serve = job.spec.serve
    if not serve.import_path:
        return []
    low = max(1, serve.min_replicas)
    bounds = f"{low}..{max(low, serve.max_replicas)}, {serve.target_rps_per_replica:g} req/s each"
    return [
        ("serve", serve.import_path),
        ("replicas", f"{job.replicas or low} ({bounds})"),
        ("demand", f"{job.requests_per_s:.1f} req/s"),
        ("endpoint", job.endpoint or "-"),
    ]


def _checkpoint_lines(job: types_pb2.Job) -> list[tuple[str, str]]:
    if not job.HasField("checkpoint"):
        return []
    ck = job.checkpoint
    saved = f"step {ck.checkpoint_step} at {when(ck.checkpoint_at)}" if ck.checkpoint_step else "none yet"
    return [("checkpoints", ck.uri or "-"), ("progress", f"step {ck.step}"), ("checkpoint", saved)]


def event_line(event: types_pb2.JobEvent) -> str:
    source = state_name(event.from_state) if event.from_state else "(new)"
    where = f" [{event.site_id}]" if event.site_id else ""
    return f"{when(event.at)}  #{event.event_id:<6} {event.job_id}  {source} -> {state_name(event.to_state)}{where}  {event.reason}"
