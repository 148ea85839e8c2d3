"""What a big store costs the scheduler at start: load time and memory over 1,000,000
finished jobs.

The scheduler keeps in memory the unfinished jobs and the newest `memory.recent_jobs`
submissions (default 100,000; docs/store.md "Memory"); older finished jobs stay in the
store and are read when asked for. This benchmark measures that bounded start, and side by
side the baseline of loading every job (what the scheduler did before: `recent_jobs` set
above the job count), and what paging costs a call: GetJob of the oldest job and a ListJobs
page from the middle of the store (both read from the store once jobs were paged out).

Fill: `--jobs` (default 1,000,000) SUCCEEDED jobs, each with its four events (submitted ->
SCHEDULED -> RUNNING -> SUCCEEDED), written as the stores write them (documents.py's
job and event documents) but through a fast path: the store's schema (SqliteStore /
PostgresStore, migrated), then executemany on SQLite (batches of 50,000 jobs, one
transaction each) or COPY on PostgreSQL. The fill's time is printed, not the point.

Start: in a fresh subprocess, import the scheduler, open the store, then time
`Controller(store, config).start(loops=False)` (load + index) and read the process's
peak RSS (VmHWM in /proc/self/status, not resource.getrusage's ru_maxrss: on Linux a
child's ru_maxrss keeps the peak its parent had when it forked, the bench's own
hundreds of MB after a fill). The same subprocess on an EMPTY store is run
side by side as the baseline (what the process costs with no jobs).

`--store sqlite` (default), `postgres` (a throwaway server, bench/submit_throughput.py's
postgres_server, fsync on) or `both`.

    .venv/bin/python bench/store_scale.py [--jobs 1000000] [--store sqlite|postgres|both]

Prints figures, then one JSON line: jobs, start_s, rss_mb, jobs_in_memory (bounded), the
load-everything baseline (all_start_s, all_rss_mb), the empty-store baseline, get_old_job_ms,
list_page_ms, file size, and postgres_* for PostgreSQL. Run PostgreSQL inside a network namespace as root.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BATCH = 50_000
T0 = 1_800_000_000.0

# Run in a fresh interpreter: argv[1] is "sqlite:<path>" or "postgres:<dsn>"; prints one JSON line.
START_PROBE = r"""
import asyncio, json, sys, time
def peak_rss_mb():
    # VmHWM, the peak RSS of this process's own memory: ru_maxrss would keep the peak of the
    # (forked) parent's memory, which exec does not reset on Linux
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller
kind, _, where = sys.argv[1].partition(":")
recent = int(sys.argv[2])
if kind == "sqlite":
    from scheduler.store.sqlite import SqliteStore
    store = SqliteStore(where)
else:
    from scheduler.store.postgres import PostgresStore
    store = PostgresStore(where)
rss_before = peak_rss_mb()
async def main():
    controller = Controller(store, SchedulerConfig(regions=["us"], memory={"recent_jobs": recent}))
    start = time.perf_counter()
    await controller.start(loops=False)
    took = time.perf_counter() - start
    jobs = len(controller.jobs)
    paging = {}
    if controller.resident.seq:
        t = time.perf_counter()
        await controller.job_of("acme", "job-0000000000000000")
        paging["get_old_job_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        page, _ = await controller.list_jobs("acme", frozenset(), 100, str(controller.resident.seq // 2))
        paging["list_page_ms"] = (time.perf_counter() - t) * 1000
        assert len(page) == 100
    await controller.stop()
    return took, jobs, paging
took, jobs, paging = asyncio.run(main())
store.close()
print(json.dumps({"start_s": took, "jobs_loaded": jobs, "rss_mb": peak_rss_mb(), "rss_before_start_mb": rss_before, **paging}))
"""


def batches(jobs: int):
    """(job rows, event rows) per batch of BATCH jobs, as documents.py writes them."""
    from scheduler.core.jobs import Job, JobEvent, JobKind, JobSpec, JobState, Resources, amend
    from scheduler.store.documents import event_to_doc, job_to_doc

    S = JobState
    spec = JobSpec(kind=JobKind.TRAINING, entrypoint="python train.py", resources=Resources(gpus=1), allowed_regions=("us",))
    template = Job(
        job_id="", tenant="acme", client_request_id="", spec=spec, state=S.SUCCEEDED, seq=0, created_at=T0, updated_at=T0 + 60,
        reason="run succeeded", site_id="us-1", attempt=1, started_at=T0 + 2,
    )
    steps = ((None, S.PENDING, "submitted", ""), (S.PENDING, S.SCHEDULED, "placed on us-1", "us-1"), (S.SCHEDULED, S.RUNNING, "run started", "us-1"), (S.RUNNING, S.SUCCEEDED, "run succeeded", "us-1"))
    for first in range(0, jobs, BATCH):
        job_rows, event_rows = [], []
        for n in range(first, min(jobs, first + BATCH)):
            job_id, at = f"job-{n:016x}", T0 + n * 0.001
            job = amend(template, job_id=job_id, client_request_id=f"req-{n}", seq=n + 1, created_at=at, updated_at=at + 60, last_event_id=4 * n + 4)
            job_rows.append((job_id, "acme", job.client_request_id, job.seq, int(S.SUCCEEDED), job_to_doc(job)))
            for i, (source, target, reason, site) in enumerate(steps):
                event = JobEvent(job_id, "acme", source, target, reason, at + i, site_id=site, run_id=f"{job_id}-r1" if site else "")
                event_rows.append((job_id, "acme", event_to_doc(event)))
        yield job_rows, event_rows


def fill_sqlite(path: Path, jobs: int) -> float:
    from scheduler.store.sqlite import SqliteStore

    store = SqliteStore(path)  # the schema, migrated
    db = store._db  # the fast path: executemany on the store's own connection, a transaction per batch
    started = time.perf_counter()
    for job_rows, event_rows in batches(jobs):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO jobs (job_id, tenant, client_request_id, seq, state, doc) VALUES (?, ?, ?, ?, ?, ?)", job_rows)
        db.executemany("INSERT INTO events (job_id, tenant, doc) VALUES (?, ?, ?)", event_rows)
        db.execute("COMMIT")
        print(f"  sqlite: {job_rows[-1][3]:,} jobs written", end="\r", flush=True)
    print()
    store.close()
    return time.perf_counter() - started


def fill_postgres(dsn: str, jobs: int) -> float:
    import psycopg

    from scheduler.store.postgres import PostgresStore

    PostgresStore(dsn).close()  # the schema, migrated
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for job_rows, event_rows in batches(jobs):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY jobs (job_id, tenant, client_request_id, seq, state, doc) FROM STDIN") as copy:
                    for row in job_rows:
                        copy.write_row(row)
                with cur.copy("COPY events (job_id, tenant, doc) FROM STDIN") as copy:
                    for row in event_rows:
                        copy.write_row(row)
            print(f"  postgres: {job_rows[-1][3]:,} jobs written", end="\r", flush=True)
        print()
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE events")
    return time.perf_counter() - started


def probe(where: str, recent: int) -> dict:
    done = subprocess.run([sys.executable, "-c", START_PROBE, where, str(recent)], capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the start probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(kind: str, jobs: int, recent: int, workdir: Path, dsn_of=None) -> dict:
    """Fill a store of `kind` with `jobs` finished jobs; probe the start on it and on an empty one."""
    if kind == "sqlite":
        empty, full = workdir / "empty.db", workdir / "full.db"
        fill_sqlite(empty, 0)
        fill_s = fill_sqlite(full, jobs)
        where_empty, where_full = f"sqlite:{empty}", f"sqlite:{full}"
    else:
        empty, full = dsn_of(), dsn_of()
        fill_postgres(empty, 0)
        fill_s = fill_postgres(full, jobs)
        where_empty, where_full = f"postgres:{empty}", f"postgres:{full}"
    baseline = probe(where_empty, recent)
    result = probe(where_full, recent)
    everything = probe(where_full, jobs + 1)
    if result["jobs_loaded"] != min(jobs, recent) or everything["jobs_loaded"] != jobs:
        raise SystemExit(f"{kind}: loaded {result['jobs_loaded']} / {everything['jobs_loaded']} jobs, expected {min(jobs, recent)} / {jobs}")
    figures = {
        "fill_s": round(fill_s, 1),
        "recent_jobs": recent,
        "jobs_in_memory": result["jobs_loaded"],
        "start_s": round(result["start_s"], 3),
        "rss_mb": round(result["rss_mb"], 1),
        "get_old_job_ms": round(result["get_old_job_ms"], 2),
        "list_page_ms": round(result["list_page_ms"], 2),
        "all_start_s": round(everything["start_s"], 3),
        "all_rss_mb": round(everything["rss_mb"], 1),
        "baseline_empty_start_s": round(baseline["start_s"], 4),
        "baseline_empty_rss_mb": round(baseline["rss_mb"], 1),
    }
    if kind == "sqlite":
        figures["db_mb"] = round(sum(p.stat().st_size for p in workdir.glob("full.db*")) / 2**20, 1)
    print(
        f"[{kind}] {jobs:,} finished jobs ({4 * jobs:,} events), filled in {fill_s:.1f}s: start {result['start_s']:.2f}s, peak RSS {result['rss_mb']:.0f} MB "
        f"with {result['jobs_loaded']:,} in memory (loading all: {everything['start_s']:.2f}s, {everything['rss_mb']:.0f} MB; empty store: "
        f"{baseline['start_s'] * 1000:.1f} ms, {baseline['rss_mb']:.0f} MB); GetJob of the oldest {result['get_old_job_ms']:.1f} ms, "
        f"a ListJobs page of 100 from the middle {result['list_page_ms']:.1f} ms",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--recent-jobs", type=int, default=None, help="memory.recent_jobs (default: the scheduler's default)")
    args = parser.parse_args()

    from scheduler.server.config import MemoryConfig

    recent = args.recent_jobs or MemoryConfig().recent_jobs
    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-store-scale-"))
    result: dict = {"jobs": args.jobs, "events_per_job": 4, "stores": []}
    if args.store in ("sqlite", "both"):
        result["stores"].append("sqlite")
        result.update(measure("sqlite", args.jobs, recent, workdir))
        for path in workdir.glob("*.db*"):
            path.unlink()
    if args.store in ("postgres", "both"):
        from submit_throughput import postgres_server

        result["stores"].append("postgres")
        with postgres_server() as server:
            figures = measure("postgres", args.jobs, recent, workdir, server.new_database)
        result.update({f"postgres_{k}": v for k, v in figures.items()})
    result["note"] = "start_s/rss_mb: the bounded start (unfinished + recent_jobs newest in memory); all_*: loading every job (the baseline)"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
