"""An AI job's whole life through the real system: gRPC scheduler, site agents,
a local Ray running the job through the Jobs API; restarts of the scheduler and
of an agent in the middle of a run lose nothing and start nothing twice."""

import time
import uuid

import pytest
from ray.job_submission import JobStatus, JobSubmissionClient

from scheduler.api.v1 import types_pb2
from scheduler.client import spec

pytestmark = pytest.mark.integration
S = types_pb2
SLEEP = "python -c 'import time; time.sleep({})'"


def ray_jobs_of(system, job_id: str):
    client = JobSubmissionClient(system.cluster.ray_address)
    return [j for j in client.list_jobs() if (j.metadata or {}).get("powerplane_job") == job_id]


def assert_runs_never_overlapped(system, job_id: str) -> None:
    """No two Ray jobs (runs) of one job were ever alive at the same time: each run was
    submitted only after every earlier run had ended (Ray's start and end times, ms)."""
    found = sorted(ray_jobs_of(system, job_id), key=lambda j: j.start_time or 0)
    for earlier, later in zip(found, found[1:]):
        assert earlier.end_time and earlier.end_time <= later.start_time, (
            f"double start: {earlier.submission_id} ({earlier.status}, ended {earlier.end_time}) overlaps "
            f"{later.submission_id} (started {later.start_time})\n--- scheduler log:\n{system.cluster.scheduler.tail(60)}"
        )


def transitions(system, client, job_id):
    return [S.JobState.Name(e.to_state).removeprefix("JOB_STATE_") for e in system.events(client, job_id)]


def transitions_with_reasons(system, client, job_id):
    return [(S.JobState.Name(e.to_state), e.reason) for e in system.events(client, job_id)]


def test_a_job_runs_to_success_in_its_region(ray_system):
    job = ray_system.globex.submit(spec("python -c 'print(\"trained\")'", gpus=4, allowed_regions=["eu"], name="tiny"), "life-ok").job
    done = ray_system.wait_state(ray_system.globex, job.job_id, S.JOB_STATE_SUCCEEDED)
    assert done.site_id == "eu-1" and done.attempt == 1
    assert transitions(ray_system, ray_system.globex, job.job_id) == ["PENDING", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED"]
    [ray_job] = ray_jobs_of(ray_system, job.job_id)
    assert ray_job.submission_id == done.run_id and ray_job.status == JobStatus.SUCCEEDED
    assert ray_job.metadata["powerplane_site"] == "eu-1"


def test_a_failing_entrypoint_fails_with_its_reason(ray_system):
    job = ray_system.acme.submit(spec("python -c 'import sys; sys.exit(3)'", gpus=1), "life-fail").job
    failed = ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_FAILED)
    assert "failed" in failed.reason and "exit code 3" in failed.reason
    assert failed.attempt == 1  # an entrypoint's own failure is not retried


def test_cancel_stops_the_running_ray_job(ray_system):
    job = ray_system.acme.submit(spec(SLEEP.format(120), gpus=2, allowed_regions=["us"]), "life-cancel").job
    ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_RUNNING)
    cancelling = ray_system.acme.cancel(job.job_id, "no longer needed")
    assert cancelling.state in (S.JOB_STATE_CANCELLING, S.JOB_STATE_CANCELLED)
    cancelled = ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_CANCELLED)
    assert "no longer needed" in cancelled.reason
    found = ray_jobs_of(ray_system, job.job_id)
    history = transitions_with_reasons(ray_system, ray_system.acme, job.job_id)
    assert len(found) == 1, f"{len(found)} Ray jobs for one job; its history: {history}\n--- scheduler log:\n{ray_system.cluster.scheduler.tail(60)}"
    assert found[0].status == JobStatus.STOPPED


def test_inference_replicas_take_their_gpus_until_cancelled(ray_system):
    job = ray_system.globex.submit(spec(SLEEP.format(120), gpus=2, kind=S.JOB_KIND_INFERENCE, replicas=3, allowed_regions=["eu"]), "life-infer").job
    ray_system.wait_state(ray_system.globex, job.job_id, S.JOB_STATE_RUNNING)
    site = ray_system.ops.site("eu-1")
    assert site.site.gpus_free == 2 and job.job_id in [r.job_id for r in site.runs]
    assert [n.gpus for n in site.inventory.gpu_nodes] == [8]
    ray_system.globex.cancel(job.job_id)
    ray_system.wait_state(ray_system.globex, job.job_id, S.JOB_STATE_CANCELLED)


def test_a_drained_site_takes_no_new_work_until_undrained(ray_system):
    ray_system.ops.drain("us-1", "maintenance")
    try:
        job = ray_system.acme.submit(spec("python -c 'pass'", gpus=1, allowed_regions=["us"]), "life-drain").job
        deadline = time.monotonic() + 10
        while "drained" not in ray_system.acme.get(job.job_id).pending_reason and time.monotonic() < deadline:
            time.sleep(0.1)
        found = ray_system.acme.get(job.job_id)
        assert found.state == S.JOB_STATE_PENDING and found.pending_reason == "no site in region us has 1 free GPUs (us-1: drained (maintenance))"
    finally:
        ray_system.ops.undrain("us-1")
    ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_SUCCEEDED)


def test_scheduler_killed_mid_run_loses_nothing_and_starts_nothing_twice(ray_system):
    cluster = ray_system.cluster
    request_id = f"life-sched-restart-{uuid.uuid4().hex[:8]}"  # unique: scripts/stress_fencing.sh repeats this test
    job = ray_system.acme.submit(spec(SLEEP.format(6), gpus=2, allowed_regions=["us"]), request_id).job
    ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_RUNNING)
    cluster.scheduler.kill()
    cluster.start_scheduler()
    assert ray_system.acme.get(job.job_id).state in (S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED)
    # The same request id after the restart is still the same job.
    again = ray_system.acme.submit(spec(SLEEP.format(6), gpus=2, allowed_regions=["us"]), request_id)
    assert not again.created and again.job.job_id == job.job_id
    done = ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_SUCCEEDED)
    assert done.attempt == 1
    assert [j.submission_id for j in ray_jobs_of(ray_system, job.job_id)] == [done.run_id]
    cluster.wait_sites_ready(ray_system.ops)


def test_agent_killed_mid_run_loses_nothing_and_starts_nothing_twice(ray_system):
    cluster = ray_system.cluster
    job = ray_system.globex.submit(spec(SLEEP.format(6), gpus=2, allowed_regions=["eu"]), f"life-agent-restart-{uuid.uuid4().hex[:8]}").job
    ray_system.wait_state(ray_system.globex, job.job_id, S.JOB_STATE_RUNNING)
    cluster.agents["eu-1"].kill()
    site = next(s for s in cluster.sites if s.site_id == "eu-1")
    cluster.start_agent(site)
    done = ray_system.wait_state(ray_system.globex, job.job_id, S.JOB_STATE_SUCCEEDED)
    assert done.attempt == 1
    assert [j.submission_id for j in ray_jobs_of(ray_system, job.job_id)] == [done.run_id]
    assert "PENDING" not in transitions(ray_system, ray_system.globex, job.job_id)[1:]
    assert_runs_never_overlapped(ray_system, job.job_id)
    cluster.wait_sites_ready(ray_system.ops)


def test_a_site_lost_past_the_timeout_requeues_its_run_and_stops_the_stale_one(ray_system):
    cluster = ray_system.cluster
    job = ray_system.acme.submit(spec(SLEEP.format(300), gpus=8, allowed_regions=["us"], max_retries=1), f"life-lost-{uuid.uuid4().hex[:8]}").job
    ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_RUNNING)
    cluster.agents["us-1"].kill()
    requeued = ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_PENDING, timeout_s=cluster.site_timeout_s + 20)
    assert "unreachable" in requeued.reason and "requeued" in requeued.reason
    # The agent comes back: the old run (still running on Ray) is stopped, the job runs again as attempt 2.
    cluster.start_agent(next(s for s in cluster.sites if s.site_id == "us-1"))
    rerun = ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_RUNNING)
    assert rerun.attempt == 2 and rerun.run_id.endswith("-r2")
    deadline = time.monotonic() + 30
    statuses = {}
    while time.monotonic() < deadline:
        statuses = {j.submission_id: j.status for j in ray_jobs_of(ray_system, job.job_id)}
        if statuses.get(f"{job.job_id}-r1") == JobStatus.STOPPED:
            break
        time.sleep(0.3)
    assert statuses == {f"{job.job_id}-r1": JobStatus.STOPPED, f"{job.job_id}-r2": JobStatus.RUNNING}
    assert_runs_never_overlapped(ray_system, job.job_id)  # the fence: r2 started only once r1 was stopped
    placed = next(e.reason for e in ray_system.events(ray_system.acme, job.job_id) if e.to_state == S.JOB_STATE_SCHEDULED and e.run_id.endswith("-r2"))
    assert f"starts once {job.job_id}-r1 there is confirmed stopped" in placed
    ray_system.acme.cancel(job.job_id)
    ray_system.wait_state(ray_system.acme, job.job_id, S.JOB_STATE_CANCELLED)
