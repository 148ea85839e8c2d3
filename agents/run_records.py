"""What the agent knows of a run without asking Ray: which states are active, how
many GPUs a run's spec takes, and the record the runner lists after a restart
(its status, its GPU count and checkpoint directory, kept in the Ray job's metadata).

Free of ray so that the session and its tests never import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.api.v1 import agent_pb2, types_pb2

ACTIVE_RUN_STATES = frozenset({agent_pb2.RUN_STATE_STARTING, agent_pb2.RUN_STATE_RUNNING})
GPUS_METADATA_KEY = "powerplane_gpus"
CHECKPOINT_METADATA_KEY = "powerplane_checkpoint_uri"


def replicas_of(spec: types_pb2.JobSpec) -> int:
    """Replicas of a spec: inference has `replicas` (0 means 1), training is one gang."""
    return max(1, spec.replicas) if spec.kind == types_pb2.JOB_KIND_INFERENCE else 1


def is_served(spec: types_pb2.JobSpec) -> bool:
    """A Serve inference service (agents/serve_runner.py), not a plain Ray job."""
    return spec.kind == types_pb2.JOB_KIND_INFERENCE and bool(spec.serve.import_path)


def start_replicas(start) -> int:
    """Replicas a Serve run starts with: the order's, else the spec's fewest."""
    return start.replicas or max(1, start.spec.serve.min_replicas)


def spec_gpus(spec: types_pb2.JobSpec) -> int:
    """All the GPUs a run of this spec takes."""
    return spec.resources.gpus * replicas_of(spec)


@dataclass(frozen=True)
class RunRecord:
    """A run as the runner lists it: its status, and its GPUs (0 when unknown)."""

    status: agent_pb2.RunStatus
    gpus: int = 0
    checkpoint_uri: str = ""  # training runs: where their checkpoints live
