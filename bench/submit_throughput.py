"""Durable SubmitJob throughput over gRPC, on SQLite and on PostgreSQL.

Starts a real scheduler with no sites, then 8 concurrent clients (asyncio, each its own
channel, spread over 2 processes) submit 1,000 jobs in all, each client one request at a
time. As a baseline run side by side, the same clients make the same number of
grpc.health.v1 Check calls against the same server: the ceiling of a unary gRPC call on
this machine, with no work behind it.

`--store` picks the store(s) (default both, one after the other, each on a fresh
scheduler and database):
* sqlite: WAL, synchronous=FULL: every acknowledged job is on disk;
* postgres: a throwaway PostgreSQL server the bench starts in a temporary folder
  (Debian's initdb/pg_ctl, as root run as the `postgres` user; 127.0.0.1 at a free
  port, trust auth), with fsync ON (unlike the tests' server) and the store's
  synchronous_commit=on: an acknowledged job is in the server's flushed WAL. Its DSN
  file sits in the scheduler's work folder (`store: {postgres: {dsn_file: pg.dsn}}`).

    .venv/bin/python bench/submit_throughput.py [--jobs 1000] [--clients 8] [--store sqlite|postgres|both]

Prints figures, then one JSON line: jobs, clients, jobs_per_s (+ baseline figures) for
SQLite and the same keys prefixed `postgres_` for PostgreSQL (null for a store not run).
Run it inside a network namespace on shared machines (see README); PostgreSQL needs
Debian's postgresql package (scripts/setup.sh installs it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import pwd
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@contextlib.contextmanager
def postgres_server(fsync: bool = True):
    """A throwaway PostgreSQL server (tests/postgres.py's PostgresServer, started here without
    pytest): initdb in a temporary folder, 127.0.0.1 at a free port and a Unix socket in
    that folder, trust auth; as root it runs as the `postgres` user. fsync stays on unless
    asked (the tests' server runs with -F). Yields the server; stops it and removes the folder."""
    from tests.postgres import NOT_FOUND, PostgresServer, _bin_dir, _free_port

    bin_dir = _bin_dir()
    if bin_dir is None:
        raise SystemExit(NOT_FOUND)
    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")  # Debian's package creates it
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bin_dir, workdir, _free_port(), run_as)
    data = workdir / "data"
    try:
        done = server.run("initdb", "-D", str(data), "-U", "powerplane", "-A", "trust", "-E", "UTF8", "--locale=C")
        if done.returncode != 0:
            raise SystemExit(f"initdb failed: {done.stderr.strip()[-2000:]}")
        options = f"-k {workdir} -h 127.0.0.1 -p {server.port} -c max_connections=200" + ("" if fsync else " -F")
        done = server.run("pg_ctl", "start", "-D", str(data), "-l", str(workdir / "server.log"), "-w", "-t", "60", "-o", options)
        if done.returncode != 0:
            log = (workdir / "server.log").read_text() if (workdir / "server.log").exists() else ""
            raise SystemExit(f"pg_ctl start failed: {done.stdout.strip()} {done.stderr.strip()} {log[-2000:]}")
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            server.run("pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w")
        shutil.rmtree(workdir, ignore_errors=True)


def postgres_settings(workdir: Path, dsn: str) -> dict:
    """Scheduler config keys for PostgreSQL: the DSN written to workdir/pg.dsn (0600)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "pg.dsn"
    path.write_text(dsn)
    path.chmod(0o600)
    return {"store": {"postgres": {"dsn_file": "pg.dsn"}}}


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


def run_store(store: str, jobs: int, clients: int, processes: int, dsn: str = "") -> tuple[float, float]:
    """(submit seconds, health seconds) on a fresh scheduler with `store` ("sqlite" or "postgres": `dsn`)."""
    from powerplane_dev.cluster import LocalCluster
    from scheduler.client import Client

    workdir = Path(tempfile.mkdtemp(prefix=f"pp-bench-submit-{store}-"))
    settings = postgres_settings(workdir, dsn) if store == "postgres" else {}
    cluster = LocalCluster(workdir, [], site_timeout_s=30, heartbeat_interval_s=5, scheduler_settings=settings)
    try:
        cluster.start_scheduler()
        target, token = cluster.scheduler_target, cluster.tenant_token("acme")
        print(f"[{store}] scheduler on {target}; {jobs} jobs from {clients} clients in {processes} processes", flush=True)
        health_s = measure("health", target, token, jobs, clients, processes)
        submit_s = measure("submit", target, token, jobs, clients, processes)
        with Client(target, token) as client:
            stored = sum(1 for _ in client.list_all())
        if stored != jobs:
            raise SystemExit(f"[{store}] expected {jobs} stored jobs, found {stored}")
    finally:
        cluster.stop()
    return submit_s, health_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients, each with its own channel")
    parser.add_argument("--processes", type=int, default=2, help="client processes hosting them (2 cores here)")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()

    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    figures: dict[str, tuple[float, float] | None] = {"sqlite": None, "postgres": None}
    for store in stores:
        if store == "postgres":
            with postgres_server() as server:
                figures[store] = run_store(store, args.jobs, args.clients, args.processes, server.new_database())
        else:
            figures[store] = run_store(store, args.jobs, args.clients, args.processes)

    result: dict = {"jobs": args.jobs, "clients": args.clients, "stores": list(stores)}
    for store in ("sqlite", "postgres"):
        prefix = "" if store == "sqlite" else "postgres_"
        keys = (f"{prefix}jobs_per_s", f"{prefix}baseline_health_calls_per_s", f"{prefix}ratio_to_baseline")
        if figures[store] is None:
            result.update(dict.fromkeys(keys))
            continue
        submit_s, health_s = figures[store]
        jobs_per_s, health_per_s = args.jobs / submit_s, args.jobs / health_s
        print(f"[{store}] durable SubmitJob : {submit_s:6.3f}s  {jobs_per_s:8.0f} jobs/s (all {args.jobs} read back)")
        print(f"[{store}] baseline Health   : {health_s:6.3f}s  {health_per_s:8.0f} calls/s")
        print(f"[{store}] ratio submit/baseline: {jobs_per_s / health_per_s:.2f}")
        result.update(zip(keys, (round(jobs_per_s, 1), round(health_per_s, 1), round(jobs_per_s / health_per_s, 3))))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
