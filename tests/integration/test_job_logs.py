"""`powerplane logs`: a running job's Ray job logs, read through its site's agent, over
real gRPC and the shared session's Ray; another tenant's job reads as NOT_FOUND, an
operator reads any job's."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from scheduler.api.v1 import types_pb2
from scheduler.client import spec
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
POWERPLANE = str(Path(sys.executable).parent / "powerplane")


def cli(system, *args, tenant="acme"):
    env = {"POWERPLANE_SCHEDULER": system.cluster.scheduler_target, "POWERPLANE_TOKEN": system.cluster.tenant_token(tenant), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run([POWERPLANE, *args], capture_output=True, text=True, env=env, timeout=60)


def test_a_tenant_reads_its_running_jobs_logs_and_no_one_elses(ray_system):
    marker = f"pp-logs-marker-{uuid.uuid4().hex[:8]}"
    entrypoint = f"python -c \"import time; print('first line'); print('{marker}', flush=True); time.sleep(60)\""
    # eu-1 is not the head node: its dashboard agent serves job logs on a port of its own (docs/jobs.md "Logs").
    job = ray_system.acme.submit(spec(entrypoint, gpus=1, name="logs", allowed_regions=["eu"]), f"logs-{marker}").job
    try:
        running = ray_system.wait_state(ray_system.acme, job.job_id, types_pb2.JOB_STATE_RUNNING)
        # Ray's log starts with the entrypoint it runs, marker included: wait for the printed line.
        logs = wait_until(lambda: (found := ray_system.acme.logs(job.job_id)) and marker in found.text.splitlines() and found, 20, "the marker in the job's logs")
        assert (logs.job_id, logs.run_id, logs.site_id) == (job.job_id, running.run_id, running.site_id)
        assert logs.text.endswith(f"{marker}\n") and not logs.truncated and logs.fetched_at.seconds > 0

        with pytest.raises(grpc.RpcError) as err:
            ray_system.globex.logs(job.job_id)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == f"job '{job.job_id}' not found"
        assert marker in ray_system.ops.logs(job.job_id).text.splitlines()  # an operator reads any tenant's job's

        shown = cli(ray_system, "logs", job.job_id, "--tail", "1")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == f"{marker}\n"
        assert shown.stderr.strip() == f"job {job.job_id}, run {running.run_id} on site {running.site_id} (its end: earlier output left out)"
        as_json = cli(ray_system, "logs", job.job_id, "-o", "json")
        assert as_json.returncode == 0 and marker in json.loads(as_json.stdout)["text"]
        refused = cli(ray_system, "logs", job.job_id, tenant="globex")
        assert (refused.returncode, refused.stdout) == (1, "") and "NOT_FOUND" in refused.stderr
        assert cli(ray_system, "logs", job.job_id, "--tail", "-1").returncode == 2  # refused before any call
    finally:
        ray_system.acme.cancel(job.job_id, "logs read")
    ray_system.wait_state(ray_system.acme, job.job_id, types_pb2.JOB_STATE_CANCELLED)
