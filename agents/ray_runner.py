"""The only module that talks to Ray for AI runs: the Ray Jobs API.

A run is a Ray job whose `submission_id` is the run id, so submitting the same run
twice can never start it twice (Ray refuses the second; we treat that as success).
Runs carry metadata `powerplane_site`, so after a restart the agent finds its runs
again by listing Ray's jobs, `powerplane_gpus` (all the GPUs the run takes), so
the agent's GPU power model knows them again too, and for training the checkpoint
directory; a training run starts with the POWERPLANE_* checkpoint environment
(powerplane_sdk/checkpoints.py), resuming from the latest checkpoint found there.
When a site resource is configured (several sites on one Ray cluster, as in the demo), runs are pinned to nodes that carry it and only
those nodes count as the site's inventory.

A run that Ray failed because the node its driver ran on died is not the run's own
failure: it is reported UNKNOWN ("lost with its node"), so the scheduler requeues
it within its retries (scheduler/core/runs.py) instead of failing the job.

A run's logs are its Ray job's logs (`logs`), read whole; the session keeps their end.

Every method blocks (HTTP to Ray's dashboard); the session calls them in threads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ray.job_submission import JobStatus, JobSubmissionClient

from agents.run_records import CHECKPOINT_METADATA_KEY, GPUS_METADATA_KEY, RunRecord, RunStart
from powerplane_sdk import checkpoints
from scheduler.core.jobs import JobKind
from scheduler.core.runs import RunReport, RunState
from scheduler.core.sites import GpuNode

__all__ = ["RUN_STATE_OF", "RayRunner", "RunRecord"]

log = logging.getLogger(__name__)
RUN_STATE_OF = {
    JobStatus.PENDING: RunState.STARTING,
    JobStatus.RUNNING: RunState.RUNNING,
    JobStatus.SUCCEEDED: RunState.SUCCEEDED,
    JobStatus.FAILED: RunState.FAILED,
    JobStatus.STOPPED: RunState.STOPPED,
}
SITE_METADATA_KEY = "powerplane_site"
MAX_MESSAGE = 2000


@dataclass
class RayRunner:
    address: str  # Ray dashboard address, e.g. http://127.0.0.1:8265
    site_id: str
    gpu_model: str = "unknown"
    site_resource: str = ""  # custom Ray resource marking this site's nodes, if shared
    _client: JobSubmissionClient | None = None

    @property
    def client(self) -> JobSubmissionClient:
        if self._client is None:
            self._client = JobSubmissionClient(self.address)
        return self._client

    def _nodes(self) -> list:
        from ray.util.state import list_nodes

        return list_nodes(address=self.address, detail=True, raise_on_missing_output=False)

    def _alive_node_ids(self) -> set[str]:
        return {n.node_id for n in self._nodes() if n.state == "ALIVE"}

    def _status_of(self, run_id: str, info, alive: set[str] | None = None) -> RunReport:
        """A Ray job's status as a run's; a failure whose driver's node is dead is a lost run."""
        state, message = RUN_STATE_OF[info.status], (info.message or "")
        node = getattr(info, "driver_node_id", None)
        if state == RunState.FAILED and node:
            if alive is None:
                alive = self._alive_node_ids()
            if node not in alive:
                state, message = RunState.UNKNOWN, f"lost with its node {node[:12]}, which died: {message}"
        return RunReport(run_id, state, message[:MAX_MESSAGE])

    def inventory(self) -> list[GpuNode]:
        nodes = self._nodes()
        result = []
        for node in nodes:
            total = node.resources_total or {}
            if node.state != "ALIVE" or (self.site_resource and self.site_resource not in total):
                continue
            result.append(
                GpuNode(
                    node_id=node.node_id,
                    gpu_model=self.gpu_model,
                    gpus=int(total.get("GPU", 0)),
                    cpus=float(total.get("CPU", 0)),
                    memory_bytes=int(total.get("memory", 0)),
                )
            )
        return result

    def submit(self, start: RunStart) -> None:
        spec = start.spec
        replicas = spec.replica_bounds[0] if spec.kind == JobKind.INFERENCE else 1  # training is one gang
        env = dict(spec.env)
        env.update(POWERPLANE_JOB_ID=start.job_id, POWERPLANE_RUN_ID=start.run_id, POWERPLANE_SITE=self.site_id)
        if self.site_resource:
            env["POWERPLANE_SITE_RESOURCE"] = self.site_resource
        metadata = {}
        if start.checkpoint_uri:  # resume from the latest checkpoint, wherever it was written
            latest = checkpoints.read_state(start.checkpoint_uri)
            env.update(
                {
                    checkpoints.ENV_DIR: start.checkpoint_uri,
                    checkpoints.ENV_RESUME_FROM: latest.checkpoint_path if latest.checkpoint_step else "",
                    checkpoints.ENV_RESUME_STEP: str(latest.checkpoint_step),
                    checkpoints.ENV_PREEMPT_FILE: checkpoints.preempt_file(start.checkpoint_uri, start.run_id),
                }
            )
            metadata[CHECKPOINT_METADATA_KEY] = start.checkpoint_uri
            log.info("run %s: checkpoints in %s, resuming from step %d", start.run_id, start.checkpoint_uri, latest.checkpoint_step)
        kwargs = dict(
            entrypoint=spec.entrypoint,
            submission_id=start.run_id,
            runtime_env={"env_vars": env},
            metadata={
                SITE_METADATA_KEY: self.site_id,
                "powerplane_job": start.job_id,
                "powerplane_tenant": start.tenant,
                GPUS_METADATA_KEY: str(start.gpus),
                **metadata,
            },
            entrypoint_num_gpus=start.gpus,
            entrypoint_num_cpus=spec.resources.cpus * replicas,
        )
        if spec.resources.memory_bytes:
            kwargs["entrypoint_memory"] = spec.resources.memory_bytes * replicas
        if self.site_resource:
            kwargs["entrypoint_resources"] = {self.site_resource: 0.001}
        try:
            self.client.submit_job(**kwargs)
        except RuntimeError as err:
            if "already exists" in str(err):
                log.info("run %s already on Ray; not submitted again", start.run_id)
                return
            raise

    def stop(self, run_id: str) -> bool:
        """Stop a run if it is still active; False when Ray has no such job."""
        try:
            self.client.stop_job(run_id)  # False only means it had already ended
            return True
        except RuntimeError as err:
            if "does not exist" in str(err) or "404" in str(err):
                return False
            raise

    def status(self, run_id: str) -> RunReport:
        try:
            info = self.client.get_job_info(run_id)
        except RuntimeError as err:
            if "does not exist" in str(err) or "404" in str(err):
                return RunReport(run_id, RunState.UNKNOWN, "Ray has no such job")
            raise
        return self._status_of(run_id, info)

    def logs(self, run_id: str) -> str | None:
        """The run's Ray job logs, whole (the driver's output); None when Ray has no such job."""
        try:
            return self.client.get_job_logs(run_id)
        except RuntimeError as err:
            if "does not exist" in str(err) or "404" in str(err):
                return None
            raise

    def list_runs(self) -> list[RunRecord]:
        """Every Powerplane run of this site that Ray knows, newest last, with its GPUs."""
        runs = []
        alive = None
        for info in sorted(self.client.list_jobs(), key=lambda i: i.start_time or 0):
            metadata = info.metadata or {}
            if metadata.get(SITE_METADATA_KEY) != self.site_id or not info.submission_id:
                continue
            if info.status == JobStatus.FAILED and alive is None:
                alive = self._alive_node_ids()
            status = self._status_of(info.submission_id, info, alive)
            gpus = _gpus_of(metadata, getattr(info, "entrypoint_num_gpus", None))
            runs.append(RunRecord(status, gpus, metadata.get(CHECKPOINT_METADATA_KEY, "")))
        return runs

    def wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client.get_version()
                return
            except Exception as err:
                self._client = None
                if time.monotonic() > deadline:
                    raise ConnectionError(f"Ray at {self.address} not reachable: {err}") from err
                time.sleep(1.0)


def _gpus_of(metadata: dict[str, str], entrypoint_num_gpus) -> int:
    """A listed run's GPUs: from our metadata; for runs submitted before it was kept,
    what the entrypoint asked Ray for where the listing says (0 where it does not)."""
    try:
        return max(0, int(metadata[GPUS_METADATA_KEY]))
    except (KeyError, ValueError):
        return max(0, int(entrypoint_num_gpus or 0))
