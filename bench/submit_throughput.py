"""Durable SubmitJob throughput over gRPC.

Starts a real scheduler (SQLite, WAL, synchronous=FULL: every acknowledged job is
on disk) with no sites, then 8 concurrent clients (asyncio, each its own channel,
spread over 2 processes) submit 1,000 jobs in all, each client one request at a time. As a baseline run side by side, the same clients
make the same number of grpc.health.v1 Check calls against the same server: the
ceiling of a unary gRPC call on this machine, with no work behind it.

    .venv/bin/python bench/submit_throughput.py [--jobs 1000] [--clients 8]

Prints figures, then one JSON line: jobs, clients, jobs_per_s (+ baseline figures).
Run it inside a network namespace on shared machines (see README).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _client_process(kind: str, target: str, token: str, counts: list[int], offsets: list[int], barrier, results) -> None:
    """One process hosting several clients, each with its own channel, each one request at a time."""
    import asyncio

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from scheduler.api.v1 import tenant_pb2, tenant_pb2_grpc
    from scheduler.client import spec

    metadata = (("authorization", f"Bearer {token}"),)
    job_spec = spec("python train.py", gpus=1)

    async def one_client(count: int, offset: int, go: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            tenant = tenant_pb2_grpc.TenantServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            await health.Check(health_pb2.HealthCheckRequest())  # connect before the clock starts
            await go.wait()
            for i in range(count):
                if kind == "submit":
                    request = tenant_pb2.SubmitJobRequest(client_request_id=f"bench-{offset + i}", spec=job_spec)
                    await tenant.SubmitJob(request, metadata=metadata, timeout=30)
                else:
                    await health.Check(health_pb2.HealthCheckRequest(), timeout=30)

    async def run() -> float:
        go = asyncio.Event()
        tasks = [asyncio.create_task(one_client(c, o, go)) for c, o in zip(counts, offsets)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(barrier.wait)
        start = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        return time.perf_counter() - start

    results.put(asyncio.run(run()))


def measure(kind: str, target: str, token: str, jobs: int, clients: int, processes: int) -> float:
    """Seconds for `clients` concurrent clients, spread over `processes` processes, to make `jobs` calls."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    counts = [jobs // clients + (1 if i < jobs % clients else 0) for i in range(clients)]
    offsets = [sum(counts[:i]) for i in range(clients)]
    procs = []
    for p in range(processes):
        mine = list(range(p, clients, processes))
        args = (kind, target, token, [counts[i] for i in mine], [offsets[i] for i in mine], barrier, results)
        procs.append(ctx.Process(target=_client_process, args=args))
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    if any(proc.exitcode for proc in procs):
        raise SystemExit(f"a {kind} client process failed")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, each with its own channel")
    parser.add_argument("--processes", type=int, default=2, help="client processes hosting them (2 cores here)")
    args = parser.parse_args()

    from powerplane_dev.cluster import LocalCluster
    from scheduler.client import Client

    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pp-bench-submit-")), [], site_timeout_s=30, heartbeat_interval_s=5)
    try:
        cluster.start_scheduler()
        target, token = cluster.scheduler_target, cluster.tenant_token("acme")
        print(f"scheduler on {target}; {args.jobs} jobs from {args.clients} clients in {args.processes} processes", flush=True)
        health_s = measure("health", target, token, args.jobs, args.clients, args.processes)
        submit_s = measure("submit", target, token, args.jobs, args.clients, args.processes)
        with Client(target, token) as client:
            stored = sum(1 for _ in client.list_all())
        if stored != args.jobs:
            raise SystemExit(f"expected {args.jobs} stored jobs, found {stored}")
    finally:
        cluster.stop()
    jobs_per_s = args.jobs / submit_s
    health_per_s = args.jobs / health_s
    print(f"durable SubmitJob : {submit_s:6.3f}s  {jobs_per_s:8.0f} jobs/s (all {args.jobs} read back)")
    print(f"baseline Health   : {health_s:6.3f}s  {health_per_s:8.0f} calls/s")
    print(f"ratio submit/baseline: {jobs_per_s / health_per_s:.2f}")
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "clients": args.clients,
                "jobs_per_s": round(jobs_per_s, 1),
                "baseline_health_calls_per_s": round(health_per_s, 1),
                "ratio_to_baseline": round(jobs_per_s / health_per_s, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
