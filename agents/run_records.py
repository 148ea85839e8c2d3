"""What the agent knows of a run without asking Ray, in plain types: the start order
(`RunStart`: a StartRun converted once at the session boundary, its spec the core's
`JobSpec`), the record a runner lists after a restart (`RunRecord`: the run's report,
its GPU count and checkpoint directory, kept in the Ray job's metadata), and whether a
run is active (the core's one definition, `scheduler.core.runs.RUN_ACTIVE`).

Run states and reports are the core's (`RunState`, `RunReport`): agents/wire.py turns
them into the wire's RunStatus. Free of ray, so that the session and its tests never
import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.jobs import JobSpec
from scheduler.core.runs import RUN_ACTIVE, RunReport

GPUS_METADATA_KEY = "powerplane_gpus"
CHECKPOINT_METADATA_KEY = "powerplane_checkpoint_uri"


@dataclass(frozen=True)
class RunStart:
    """An order to start a run, as the scheduler sent it."""

    run_id: str
    job_id: str
    tenant: str
    spec: JobSpec
    checkpoint_uri: str = ""  # training: where its checkpoints live (resume from the latest)
    replicas: int = 0  # Serve inference: replicas to start with (0: the spec's fewest)

    @property
    def start_replicas(self) -> int:
        """Replicas the run starts with: the order's, else the spec's fewest."""
        return self.replicas or self.spec.replica_bounds[0]

    @property
    def gpus(self) -> int:
        """All the GPUs the run takes when it starts."""
        if self.spec.served:
            return self.spec.resources.gpus * self.start_replicas
        return self.spec.total_gpus


def is_active(report: RunReport) -> bool:
    return report.state in RUN_ACTIVE


def replicas_of(report: RunReport) -> int:
    """The replicas a Serve run's report says it holds (0 for other runs)."""
    return report.serve.replicas if report.serve is not None else 0


@dataclass(frozen=True)
class RunRecord:
    """A run as the runner lists it: its report, and its GPUs (0 when unknown)."""

    status: RunReport
    gpus: int = 0
    checkpoint_uri: str = ""  # training runs: where their checkpoints live
