"""Submit -> RUNNING latency through Powerplane vs straight to Ray, same Ray, same job.

One local Ray cluster (one site node with virtual GPUs), the scheduler and one
agent on loopback. For each of N rounds, alternating which goes first:
- Powerplane: SubmitJob over gRPC, then WatchJobs until the job's RUNNING event
  (placement, the agent's start order, Ray's Jobs API, the agent's status poll and
  the event back all count);
- Ray: JobSubmissionClient.submit_job with the same entrypoint and resources,
  then get_job_status every 50 ms until RUNNING (the agent polls every 100 ms).
Each job sleeps 1 s and is waited for before the next round, so runs never overlap.

    .venv/bin/python bench/api_overhead.py [--runs 10]

Prints figures, then one JSON line: powerplane_p50_s, powerplane_p95_s, ray_p50_s,
ray_p95_s, overhead_ratio_p50. Run it inside a network namespace (Ray listens widely).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Ray fixes its auth mode at import: token auth with one token file for cluster and clients.
_TOKEN = Path(tempfile.mkdtemp(prefix="pp-bench-ray-")) / "token"
_TOKEN.write_text(secrets.token_hex(32))
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(_TOKEN), RAY_USAGE_STATS_ENABLED="0")

from ray.job_submission import JobStatus, JobSubmissionClient  # noqa: E402

from powerplane_dev.cluster import LocalCluster, SiteSpec, site_resource, wait_for  # noqa: E402
from scheduler.api.v1 import types_pb2  # noqa: E402
from scheduler.client import Client, spec  # noqa: E402

ENTRYPOINT = "python -c 'import time; time.sleep(1)'"
GPUS = 1
SITE = SiteSpec("us-1", "us", gpus=8, cpus=2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def through_powerplane(client: Client, ray: JobSubmissionClient) -> float:
    start = time.perf_counter()
    job = client.submit(spec(ENTRYPOINT, gpus=GPUS), uuid.uuid4().hex).job
    stream = client.watch(0, job.job_id, timeout_s=60)
    for event in stream:
        if event.to_state == types_pb2.JOB_STATE_RUNNING:
            latency = time.perf_counter() - start
            stream.cancel()
            break
        if event.to_state in (types_pb2.JOB_STATE_FAILED, types_pb2.JOB_STATE_CANCELLED, types_pb2.JOB_STATE_SUCCEEDED):
            raise SystemExit(f"job {job.job_id} ended {event.to_state} before RUNNING was seen: {event.reason}")
    wait_for(lambda: client.get(job.job_id).state == types_pb2.JOB_STATE_SUCCEEDED, 60, "the Powerplane job to finish", 0.1)
    return latency


def straight_to_ray(ray: JobSubmissionClient) -> float:
    start = time.perf_counter()
    submission_id = ray.submit_job(
        entrypoint=ENTRYPOINT,
        submission_id=f"bench-{uuid.uuid4().hex}",
        entrypoint_num_gpus=GPUS,
        entrypoint_num_cpus=0,
        entrypoint_resources={site_resource(SITE.site_id): 0.001},
    )
    while (status := ray.get_job_status(submission_id)) == JobStatus.PENDING:
        time.sleep(0.05)
    latency = time.perf_counter() - start
    if status != JobStatus.RUNNING and status != JobStatus.SUCCEEDED:
        raise SystemExit(f"ray job {submission_id} ended {status}")
    wait_for(lambda: ray.get_job_status(submission_id) == JobStatus.SUCCEEDED, 60, "the Ray job to finish", 0.1)
    return latency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pp-bench-overhead-")), [SITE], site_timeout_s=30, heartbeat_interval_s=5)
    powerplane, direct = [], []
    try:
        print("starting Ray, the scheduler and one agent ...", flush=True)
        cluster.start_ray()
        cluster.start_scheduler()
        cluster.start_agents()
        client = Client(cluster.scheduler_target, cluster.tenant_token("acme"))
        cluster.wait_sites_ready(Client(cluster.scheduler_target, cluster.operator_token))
        ray = JobSubmissionClient(cluster.ray_address)
        through_powerplane(client, ray)  # warm-up: first driver start on the node is slower
        straight_to_ray(ray)
        for round_no in range(1, args.runs + 1):
            if round_no % 2:
                powerplane.append(through_powerplane(client, ray))
                direct.append(straight_to_ray(ray))
            else:
                direct.append(straight_to_ray(ray))
                powerplane.append(through_powerplane(client, ray))
            print(f"round {round_no:>3}/{args.runs}: powerplane {powerplane[-1]:.3f}s  ray {direct[-1]:.3f}s", flush=True)
    finally:
        cluster.stop()
    result = {
        "powerplane_p50_s": round(statistics.median(powerplane), 4),
        "powerplane_p95_s": round(percentile(powerplane, 0.95), 4),
        "ray_p50_s": round(statistics.median(direct), 4),
        "ray_p95_s": round(percentile(direct, 0.95), 4),
    }
    result["overhead_ratio_p50"] = round(result["powerplane_p50_s"] / result["ray_p50_s"], 3)
    print(
        f"submit -> RUNNING over {args.runs} runs: Powerplane p50 {result['powerplane_p50_s']}s p95 {result['powerplane_p95_s']}s; "
        f"Ray direct p50 {result['ray_p50_s']}s p95 {result['ray_p95_s']}s; ratio p50 {result['overhead_ratio_p50']}"
    )
    print(json.dumps({"runs": args.runs, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
