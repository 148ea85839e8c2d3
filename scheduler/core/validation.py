"""Checks a submitted job spec before anything is written.

`validate_submission` raises `InvalidArgument` listing every problem it found, so
a client learns all that is wrong in one round trip. Limits are deliberately
generous for real workloads and tight against absurd or hostile input.
"""

from __future__ import annotations

import math
import re

from scheduler.core.errors import InvalidArgument, shown
from scheduler.core.jobs import JobKind, JobSpec

MAX_NAME = 128
MAX_ID = 128  # any id a caller sends: job, site, grid event, page token
MAX_ENTRYPOINT = 16 * 1024
MAX_MAP_ENTRIES = 64
MAX_KEY = 256
MAX_ENV_VALUE = 4096
MAX_LABEL_VALUE = 256
MAX_GPUS_PER_REPLICA = 1024
MAX_TOTAL_GPUS = 16384
MAX_CPUS = 4096.0
MAX_MEMORY = 64 * 1024**4  # 64 TiB
MAX_REPLICAS = 1000
PRIORITY_RANGE = (-1000, 1000)
MAX_RUNTIME_S = 90 * 24 * 3600
MAX_SLOWDOWN_PCT = 50  # the Zeus measurements behind ledger.py go no further
MAX_RETRIES = 100
MAX_CHECKPOINT_GRACE_S = 3600
MAX_CHECKPOINT_URI = 1024
MAX_RPS_PER_REPLICA = 1e6

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_URI_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$")


def split_host_port(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`host:port` (port 0..65535; 0: any free port) as (host, port), `default_host` for an
    empty host; ValueError naming the value otherwise. Every listen and advertise setting."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be host:port (port 0..65535; 0: any free port), got {value!r}")
    return host or default_host, int(port)


def check_ids(**ids: str) -> None:
    """Refuse an id longer than MAX_ID characters (whether an empty one is allowed is the caller's call)."""
    for field_name, value in ids.items():
        if len(value) > MAX_ID:
            raise InvalidArgument(f"{field_name} is {len(value)} characters; at most {MAX_ID} allowed")


def _check_map(problems: list[str], what: str, mapping: dict[str, str], key_re: re.Pattern, max_value: int) -> None:
    if len(mapping) > MAX_MAP_ENTRIES:
        problems.append(f"{what} has {len(mapping)} entries; at most {MAX_MAP_ENTRIES} allowed")
        return
    for key, value in mapping.items():
        if len(key) > MAX_KEY or not key_re.match(key):
            problems.append(f"{what} key {key[:40]!r} is not a valid name")
        if len(value) > max_value:
            problems.append(f"{what}[{key[:40]}] is {len(value)} characters; at most {max_value} allowed")
        if "\x00" in value:
            problems.append(f"{what}[{key[:40]}] contains a NUL character")


def validate_submission(client_request_id: str, spec: JobSpec, known_regions: frozenset[str]) -> None:
    """Raise InvalidArgument naming every problem with this submission, or return None."""
    problems: list[str] = []
    if not client_request_id:
        problems.append("client_request_id is required (it makes SubmitJob idempotent)")
    elif len(client_request_id) > MAX_ID:
        problems.append(f"client_request_id is {len(client_request_id)} characters; at most {MAX_ID} allowed")
    if spec.kind not in (JobKind.TRAINING, JobKind.INFERENCE):
        problems.append("kind must be TRAINING or INFERENCE")
    if len(spec.name) > MAX_NAME:
        problems.append(f"name is {len(spec.name)} characters; at most {MAX_NAME} allowed")
    if not spec.entrypoint.strip():
        problems.append("entrypoint is required (the command Ray runs)")
    elif len(spec.entrypoint) > MAX_ENTRYPOINT:
        problems.append(f"entrypoint is {len(spec.entrypoint)} bytes; at most {MAX_ENTRYPOINT} allowed")
    elif "\x00" in spec.entrypoint:
        problems.append("entrypoint contains a NUL character")

    res = spec.resources
    if res.gpus < 1:
        problems.append("resources.gpus must be at least 1")
    elif res.gpus > MAX_GPUS_PER_REPLICA:
        problems.append(f"resources.gpus is {res.gpus}; at most {MAX_GPUS_PER_REPLICA} per replica allowed")
    if not math.isfinite(res.cpus) or res.cpus < 0 or res.cpus > MAX_CPUS:
        problems.append(f"resources.cpus must be between 0 and {MAX_CPUS:g}, got {res.cpus}")
    if res.memory_bytes < 0 or res.memory_bytes > MAX_MEMORY:
        problems.append(f"resources.memory_bytes must be between 0 and {MAX_MEMORY}, got {res.memory_bytes}")
    if spec.kind == JobKind.TRAINING and spec.replicas != 1:
        problems.append("replicas applies to INFERENCE jobs only; a TRAINING job is one gang")
    if not 1 <= spec.replicas <= MAX_REPLICAS:
        problems.append(f"replicas must be between 1 and {MAX_REPLICAS}, got {spec.replicas}")
    elif res.gpus >= 1 and spec.total_gpus > MAX_TOTAL_GPUS:
        problems.append(f"job needs {spec.total_gpus} GPUs in all; at most {MAX_TOTAL_GPUS} allowed")
    if not PRIORITY_RANGE[0] <= spec.priority <= PRIORITY_RANGE[1]:
        problems.append(f"priority must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}, got {spec.priority}")
    unknown = sorted(set(spec.allowed_regions) - known_regions)
    if unknown:
        listed = ", ".join(shown(r) if len(r) > 32 else r for r in unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        problems.append(f"unknown region(s) {listed}; known: {', '.join(sorted(known_regions)) or 'none'}")
    if not 0 <= spec.max_runtime_s <= MAX_RUNTIME_S:
        problems.append(f"max_runtime_s must be between 0 and {MAX_RUNTIME_S}, got {spec.max_runtime_s}")
    if not 0 <= spec.max_retries <= MAX_RETRIES:
        problems.append(f"max_retries must be between 0 and {MAX_RETRIES}, got {spec.max_retries}")
    if not 0 <= spec.slowdown_tolerance_pct <= MAX_SLOWDOWN_PCT:
        problems.append(f"slowdown_tolerance_pct must be between 0 and {MAX_SLOWDOWN_PCT}, got {spec.slowdown_tolerance_pct}")
    elif spec.slowdown_tolerance_pct and spec.kind != JobKind.TRAINING:
        problems.append("slowdown_tolerance_pct applies to TRAINING jobs only; inference is never power-capped")
    _check_checkpoint(problems, spec)
    _check_serve(problems, spec)
    _check_map(problems, "env", spec.env, _ENV_KEY, MAX_ENV_VALUE)
    _check_map(problems, "labels", spec.labels, _LABEL_KEY, MAX_LABEL_VALUE)
    if problems:
        raise InvalidArgument("; ".join(problems))


def _check_checkpoint(problems: list[str], spec: JobSpec) -> None:
    uri = spec.checkpoint_uri
    if uri and spec.kind != JobKind.TRAINING:
        problems.append("checkpoint_uri applies to TRAINING jobs only")
    elif len(uri) > MAX_CHECKPOINT_URI or any(ord(c) < 32 for c in uri):
        problems.append(f"checkpoint_uri must be at most {MAX_CHECKPOINT_URI} printable characters")
    elif uri and not (uri.startswith("/") or _URI_SCHEME.match(uri)):
        problems.append(f"checkpoint_uri must be an absolute path or a URI like s3://bucket/prefix, got {shown(uri)}")
    if not 0 <= spec.checkpoint_grace_s <= MAX_CHECKPOINT_GRACE_S:
        problems.append(f"checkpoint_grace_s must be between 0 and {MAX_CHECKPOINT_GRACE_S}, got {spec.checkpoint_grace_s}")


def _check_serve(problems: list[str], spec: JobSpec) -> None:
    serve_fields = spec.min_replicas or spec.max_replicas or spec.target_rps_per_replica
    if not spec.serve_import_path:
        if serve_fields:
            problems.append("serve.min_replicas, max_replicas and target_rps_per_replica need serve.import_path")
        return
    if spec.kind != JobKind.INFERENCE:
        problems.append("serve applies to INFERENCE jobs only")
        return
    if not _IMPORT_PATH.match(spec.serve_import_path):
        problems.append(f"serve.import_path must look like 'package.module:app', got {shown(spec.serve_import_path)}")
    low, high = spec.min_replicas, spec.max_replicas
    if not 0 <= low <= MAX_REPLICAS or not 0 <= high <= MAX_REPLICAS:
        problems.append(f"serve.min_replicas and max_replicas must be between 0 and {MAX_REPLICAS}")
    elif high and high < max(1, low):
        problems.append(f"serve.max_replicas ({high}) is below min_replicas ({max(1, low)})")
    if not (0 <= spec.target_rps_per_replica <= MAX_RPS_PER_REPLICA) or math.isnan(spec.target_rps_per_replica):
        problems.append(f"serve.target_rps_per_replica must be between 0 and {MAX_RPS_PER_REPLICA:g}")
    elif high > max(1, low) and spec.target_rps_per_replica <= 0:
        problems.append("serve.target_rps_per_replica must be > 0 for a service that scales (max_replicas > min_replicas)")
    if spec.replicas != 1:
        problems.append("replicas does not apply to a Serve job: it starts at serve.min_replicas and scales to max_replicas")
    if spec.resources.gpus * spec.replica_bounds[1] > MAX_TOTAL_GPUS:
        problems.append(f"serve.max_replicas x resources.gpus exceeds {MAX_TOTAL_GPUS} GPUs")
