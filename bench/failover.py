"""Fail-over between two scheduler replicas under load: kill -9 the leader, time the
standby taking over, and check that nothing acknowledged was lost or stored twice.

Two replicas (`powerplane scheduler`, real processes, each its own port on 127.0.0.1,
$POWERPLANE_ADVERTISE set to it) share one store: by default a throwaway PostgreSQL
server the bench starts (bench/submit_throughput.py's postgres_server: fsync on), or
with `--store sqlite` one SQLite file. Leadership runs with the DEFAULT lease settings
(lease_ttl_s 8, renew_every_s 1, step_down_margin_s 2; `--ttl/--renew/--margin` to
try others); the settings used are printed and are in the JSON line.

Eight submitting clients (threads, each its own scheduler.client.Client given both
addresses) submit one job at a time; a request is retried with the SAME
client_request_id until it is acknowledged (as tests/integration/test_failover.py
does), whatever error it met (each error is counted by its gRPC code). Each round the
bench waits until K jobs were acknowledged in that round (K: 50, 200, 500 by default,
`--kill-after`, or `--random`), kill -9s the leader's process group, and measures:

* failover_s: from the kill to the first acknowledgement of a submission sent after it
  (the clients' view: lease expiry, the standby's next claim, loading the store, the
  clients' own retry pauses);
* takeover_s: from the kill to the standby's health check answering SERVING;
* then restarts the killed replica, which becomes the new standby (restart_standby_s:
  until its health answers NOT_SERVING), and goes on to the next round.

At the end the clients stop and every job is read from the database itself:
acknowledged (request ids acknowledged), lost (acknowledged but not stored, or stored
under another job id), duplicated (request ids with more than one job), duplicate_seqs
(submission numbers two jobs share), per round and in all; and the same through the
leader's ListJobs (api_lost, api_duplicated: what a tenant listing its jobs sees).

Without `--system` no Ray and no agent run: double_runs, agents_reconnected_s and
cap_exceeded_s are null in the JSON and listed under "not_measured".

With `--system` (PostgreSQL only) the whole system runs: powerplane_dev/failover_drill.py,
the drill tests/integration/test_failover_system.py runs once. Two replicas, one Ray node
for a power-managed site (4 virtual GPUs, 4 emulated Braiins OS miners on port 80) whose
agent is given both addresses, and a grid cap cut in force (mining curtailed) for every
round. Each round submits a training job (checkpoints), waits until it is past its first
checkpoint, starts 8 submitters (paced: one submission per client every 0.1 s; a few are
small jobs that run on the site, the rest stay pending), kills the leader once K were
acknowledged and a small job has started, waits until as many more were acknowledged,
the training job and the small jobs ended, and restarts the killed replica as the
standby. Besides the figures above it reports:

* double_runs: jobs Ray's Jobs API holds more than one run for (nothing in the drill is
  preempted or fails, so a second run is a job started twice);
* agents_reconnected_s: from the kill to the agent's site READY on the new leader (the
  worst round; per round in per_round);
* cap_exceeded_s: seconds during which the agent's metered power (its /metrics, sampled
  every 0.1 s from the cut in force to the end) was above the cap it held or the cut;
* training_succeeded: rounds whose training job ended SUCCEEDED in its one run.

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/failover.py [--rounds 3] [--store postgres|sqlite] [--system]'

Prints figures, then one JSON line. Run it as root inside a network namespace (the
PostgreSQL server runs as the `postgres` user).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2  # noqa: E402

from powerplane_dev.cluster import SchedulerReplica, wait_for  # noqa: E402
from scheduler.client import Client, spec  # noqa: E402
from scheduler.server.config import LeadershipConfig  # noqa: E402

TOKEN = "acme-" + "b" * 24
TOKENS = {"tenants": {"acme": TOKEN}, "operators": {"ops": "ops-" + "p" * 24}, "sites": {}}
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
GOAL_FAILOVER_S = 10.0
NOT_MEASURED = ["double_runs", "agents_reconnected_s", "cap_exceeded_s"]


class Replica(SchedulerReplica):
    """One scheduler replica (powerplane_dev.cluster.SchedulerReplica) the bench starts, kills and restarts."""

    def start(self) -> None:
        self.process.start()

    def check_alive(self) -> None:
        if not self.process.alive:
            raise SystemExit(f"replica {self.name} exited:\n{self.process.tail()}")


class Load:
    """Eight (or --clients) submitting threads; every acknowledgement with its times."""

    def __init__(self, target: str, clients: int):
        self.target = target
        self.lock = threading.Lock()
        self.acks: list[tuple[str, str, float, float]] = []  # (request id, job id, attempt sent at, acknowledged at)
        self.errors: collections.Counter[str] = collections.Counter()
        self.error_log: list[tuple[float, str]] = []  # (when, code): which round saw what
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._submitter, args=(n,), daemon=True) for n in range(clients)]
        self.job_spec = spec("python train.py", gpus=1, allowed_regions=["us"])

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def count(self) -> int:
        return len(self.acks)

    def _submitter(self, n: int) -> None:
        with Client(self.target, TOKEN, timeout_s=5) as client:
            i = 0
            while not self.stop.is_set():
                request_id = f"c{n}-{i}"
                give_up = time.monotonic() + 120
                while True:  # the same request id until it is acknowledged: retries are idempotent
                    sent = time.monotonic()
                    try:
                        job = client.submit(self.job_spec, client_request_id=request_id).job
                        break
                    except grpc.RpcError as err:
                        code = err.code().name if err.code() else "UNKNOWN"
                        with self.lock:
                            self.errors[code] += 1
                            self.error_log.append((time.monotonic(), code))
                        if time.monotonic() > give_up:
                            self.failures.append(f"{request_id}: gave up after 120 s, last {code} {err.details()}")
                            return
                        time.sleep(0.2)  # the client followed the refusal's hint or the next address already
                acked = time.monotonic()
                with self.lock:
                    self.acks.append((request_id, job.job_id, sent, acked))
                i += 1

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(130)


def stored_jobs(target: str, token: str = TOKEN) -> dict[str, list[str]]:
    """client_request_id -> job ids, every job read back from the leader."""
    by_request: dict[str, list[str]] = collections.defaultdict(list)
    with Client(target, token, timeout_s=30) as client:
        for job in client.list_all():
            by_request[job.client_request_id].append(job.job_id)
    return by_request


def crash_reason(replica: Replica) -> str:
    """The line that says why a replica stopped (its last CRITICAL or ERROR line's message)."""
    lines = [line for line in replica.process.tail(400).splitlines() if " CRITICAL " in line or "Error" in line or "stopping" in line]
    return lines[0].split(" ", 3)[-1][:300] if lines else replica.process.tail(3)[-300:]


def supervise(load: Load, standby: Replica, killed_at: float, acked_before: int, timeout_s: float = 180.0) -> tuple[float, float, list[dict]]:
    """After the leader's kill: wait until the standby serves and clients are acknowledged
    again, restarting the standby should it exit meanwhile (as an orchestrator would).
    Returns (when it answered SERVING, when the first submission sent after the kill, and
    after its last crash, was acknowledged, its crashes). Service counts as back once the
    new leader has kept running for a second after that acknowledgement."""
    crashes: list[dict] = []
    since, took_over, first = killed_at, None, None
    deadline = time.monotonic() + timeout_s
    while True:
        now = time.monotonic()
        if now > deadline:
            raise SystemExit(f"no leader serving {timeout_s:g}s after the kill; {standby.name}'s log:\n{standby.process.tail()}")
        if not standby.process.alive:
            crashes.append({"replica": standby.name, "after_kill_s": round(now - killed_at, 3), "exit": standby.process.popen.returncode, "why": crash_reason(standby)})
            standby.start()
            since, took_over, first = time.monotonic(), None, None
            continue
        if took_over is None and standby.health() == SERVING:
            took_over = time.monotonic()
        if first is None:
            first = next((a[3] for a in load.acks[acked_before:] if a[2] > since), None)
        if took_over is not None and first is not None and now > first + 1.0:
            return took_over, first, crashes
        time.sleep(0.02)


def stored_rows(workdir: Path, dsn: str | None) -> list[tuple[str, str, int]]:
    """(client_request_id, job_id, seq) of every job, read from the database itself."""
    query = "SELECT client_request_id, job_id, seq FROM jobs"
    if dsn is not None:
        import psycopg

        with psycopg.connect(dsn) as conn:
            return [tuple(row) for row in conn.execute(query)]
    import sqlite3

    db = sqlite3.connect(workdir / "shared.db")
    try:
        return [tuple(row) for row in db.execute(query)]
    finally:
        db.close()


def kill_points(args) -> list[int]:
    if args.random:
        rng = random.Random(args.seed)
        return [rng.randint(20, 600) for _ in range(args.rounds)]
    points = [int(p) for p in args.kill_after.split(",")]
    return [points[i % len(points)] for i in range(args.rounds)]


def run(args, workdir: Path, dsn: str | None) -> dict:
    leadership, used = lease_settings(args)  # the defaults the replicas run with, unless overridden
    print(f"store: {args.store}; lease settings: {used}", flush=True)
    (workdir / "tokens.yaml").write_text(yaml.safe_dump(TOKENS))
    (workdir / "tokens.yaml").chmod(0o600)
    replicas = [Replica(workdir, name, leadership, dsn=dsn) for name in ("a", "b")]
    leader, standby = replicas
    rounds: list[dict] = []
    load = Load(",".join(r.address for r in replicas), args.clients)
    try:
        leader.start()
        wait_for(lambda: leader.check_alive() or leader.health() == SERVING, 60, "replica a leading")
        standby.start()
        wait_for(lambda: standby.check_alive() or standby.health() == NOT_SERVING, 60, "replica b standing by")
        print(f"a leads on {leader.address}, b stands by on {standby.address}; {args.clients} clients submitting", flush=True)
        load.start()
        for number, after in enumerate(kill_points(args), start=1):
            base = load.count()
            wait_for(lambda n=base + after: load.failures or load.count() >= n, 300, f"{after} acknowledgements in round {number}", interval_s=0.01)
            if load.failures:
                raise SystemExit(f"a client gave up: {load.failures[:3]}")
            acked_before = load.count()
            killed_at = time.monotonic()
            leader.process.kill()
            took_over, first, crashes = supervise(load, standby, killed_at, acked_before)
            restarted_at = time.monotonic()
            leader.start()
            wait_for(lambda r=leader: r.check_alive() or r.health() == NOT_SERVING, 60, f"replica {leader.name} standing by again", interval_s=0.05)
            standby_s = time.monotonic() - restarted_at
            errors = collections.Counter(code for at, code in list(load.error_log) if at >= killed_at)
            result = {
                "round": number,
                "killed": leader.name,
                "kill_after_acknowledged": after,
                "acknowledged_at_kill": acked_before - base,
                "failover_s": round(first - killed_at, 3),
                "takeover_s": round(took_over - killed_at, 3),
                "new_leader_crashes": crashes,
                "restart_standby_s": round(standby_s, 3),
                "client_errors": dict(errors),
            }
            print(
                f"round {number}: killed {leader.name} after {acked_before - base} acknowledged; {standby.name} SERVING after {result['takeover_s']:.2f}s, "
                f"first acknowledged submit after {result['failover_s']:.2f}s; {leader.name} standing by again in {standby_s:.2f}s; client errors {dict(errors)}"
                + (f"; the new leader CRASHED {len(crashes)}x and was restarted: {crashes}" if crashes else ""),
                flush=True,
            )
            result["_window"] = (base, load.count())
            rounds.append(result)
            leader, standby = standby, leader
        wait_for(lambda: load.count() >= rounds[-1]["_window"][1] + 50, 60, "submissions after the last round", interval_s=0.01)
        load.join()
        if load.failures:
            raise SystemExit(f"a client gave up: {load.failures[:3]}")
        listed = stored_jobs(leader.address)
    finally:
        load.stop.set()
        for replica in replicas:
            replica.process.kill()

    acks = list(load.acks)
    windows = []
    for index, result in enumerate(rounds):
        start = result.pop("_window")[0]
        end = rounds[index + 1]["_window"][0] if index + 1 < len(rounds) else len(acks)
        windows.append({r for r, _, _, _ in acks[start:end]})
    acknowledged = {request: job for request, job, _, _ in acks}
    return {
        "store": args.store,
        "lease": used,
        "clients": args.clients,
        **tally(rounds, windows, acknowledged, stored_rows(workdir, dsn), listed),
        "client_errors": dict(load.errors),
        "double_runs": None,
        "agents_reconnected_s": None,
        "cap_exceeded_s": None,
        "not_measured": NOT_MEASURED,
        "note": "no agents, Ray or power sites in this bench: double runs, agents' reconnection and cap excursions were not measured",
        "per_round": rounds,
    }


def tally(rounds: list[dict], windows: list[set[str]], acknowledged: dict[str, str], rows: list[tuple[str, str, int]], listed: dict[str, list[str]]) -> dict:
    """The figures over all rounds (each round's own, from the request ids of its window,
    go into it): fail-over times, and acknowledged jobs lost or stored twice, in the
    database (`rows`) and as the leader's ListJobs shows them (`listed`)."""
    by_request: dict[str, list[str]] = collections.defaultdict(list)
    for request, job, _ in rows:
        by_request[request].append(job)
    seqs = collections.Counter(seq for _, _, seq in rows)
    lost = {r for r, j in acknowledged.items() if j not in by_request.get(r, [])}
    duplicated = {r for r, jobs in by_request.items() if len(jobs) > 1}
    api_lost = {r for r, j in acknowledged.items() if j not in listed.get(r, [])}
    api_duplicated = {r for r, jobs in listed.items() if len(jobs) > 1}
    for result, mine in zip(rounds, windows):
        result.update(acknowledged=len(mine), lost=len(mine & lost), duplicated=len(mine & duplicated), api_lost=len(mine & api_lost), api_duplicated=len(mine & api_duplicated))
    failovers = [r["failover_s"] for r in rounds]
    return {
        "rounds": len(rounds),
        "failover_s_median": round(statistics.median(failovers), 3),
        "failover_s_max": round(max(failovers), 3),
        "takeover_s_median": round(statistics.median(r["takeover_s"] for r in rounds), 3),
        "new_leader_crashes": sum(len(r.get("new_leader_crashes", ())) for r in rounds),
        "goal_failover_s": GOAL_FAILOVER_S,
        "acknowledged": len(acknowledged),
        "stored_jobs": len(rows),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "duplicate_seqs": sum(1 for n in seqs.values() if n > 1),
        "api_listed_jobs": sum(len(j) for j in listed.values()),
        "api_lost": len(api_lost),
        "api_duplicated": len(api_duplicated),
    }


def run_system(args, workdir: Path, dsn: str) -> dict:
    """The rounds with the whole system running (powerplane_dev/failover_drill.py)."""
    from powerplane_dev.cluster import can_host_miners
    from powerplane_dev.failover_drill import CUT_W, FailoverDrill
    from scheduler.api.v1 import types_pb2

    miners = "127.41.0.1"
    if not can_host_miners(miners):
        raise SystemExit("--system runs emulated miners on port 80: run it as root (or with CAP_NET_BIND_SERVICE)")
    leadership, used = lease_settings(args)
    print(f"store: postgres, whole system; lease settings: {used}", flush=True)
    drill = FailoverDrill(workdir, dsn, leadership, miners_base=miners)
    rounds: list[dict] = []
    windows: list[set[str]] = []
    acknowledged: dict[str, str] = {}
    errors: collections.Counter[str] = collections.Counter()
    try:
        drill.start()
        drill.cut_cap()
        print(f"{drill.cluster.scheduler_target}: replicas up, site ready, cap cut to {CUT_W / 1e3:g} kW in force", flush=True)
        for number, after in enumerate(kill_points(args), start=1):
            done = drill.run_round(number, kill_after=after, clients=args.clients)
            restarted_at = time.monotonic()
            drill.restart(done.killed)
            training = drill.job(done.training_job)
            result = {
                "round": number,
                "killed": done.killed,
                "kill_after_acknowledged": after,
                "acknowledged_at_kill": done.acknowledged_at_kill,
                "training_step_at_kill": done.training_step_at_kill,
                "failover_s": round(done.failover_s, 3),
                "takeover_s": round(done.takeover_s, 3),
                "agents_reconnected_s": round(done.agents_reconnected_s, 3),
                "restart_standby_s": round(time.monotonic() - restarted_at, 3),
                "training": types_pb2.JobState.Name(training.state).removeprefix("JOB_STATE_"),
                "training_attempts": training.attempt,
                "client_errors": dict(done.submitters.errors),
            }
            print(
                f"round {number}: killed {done.killed} after {done.acknowledged_at_kill} acknowledged (training at step {done.training_step_at_kill}); "
                f"{done.leader} SERVING after {done.takeover_s:.2f}s, agent on it after {done.agents_reconnected_s:.2f}s, first acknowledged submit "
                f"after {done.failover_s:.2f}s; training {result['training']}; client errors {result['client_errors']}",
                flush=True,
            )
            rounds.append(result)
            windows.append({a.request_id for a in done.submitters.acks})
            acknowledged.update({a.request_id: a.job_id for a in done.submitters.acks})
            errors.update(done.submitters.errors)
        listed = stored_jobs(drill.cluster.leader().address, drill.cluster.tenant_token("acme"))
        double_runs = drill.double_runs()
        samples = drill.power_samples()
        cap_exceeded_s = drill.cap_exceeded_s()
        over = drill.cap_exceeded()
        misses = drill.sampler.misses
    finally:
        drill.stop()
    return {
        "store": "postgres",
        "system": True,
        "lease": used,
        "clients": args.clients,
        **tally(rounds, windows, acknowledged, stored_rows(workdir, dsn), listed),
        "client_errors": dict(errors),
        "double_runs": len(double_runs),
        "double_run_jobs": double_runs,
        "agents_reconnected_s": max(r["agents_reconnected_s"] for r in rounds),
        "agents_reconnected_s_median": round(statistics.median(r["agents_reconnected_s"] for r in rounds), 3),
        "cap_exceeded_s": round(cap_exceeded_s, 3),
        "cap_w": CUT_W,
        "power_samples": len(samples),
        "power_samples_over_cap": len(over),
        "power_sample_misses": misses,
        "max_metered_w": round(max(s.metered_w for s in samples), 1),
        "training_succeeded": sum(1 for r in rounds if r["training"] == "SUCCEEDED" and r["training_attempts"] == 1),
        "per_round": rounds,
    }


def lease_settings(args) -> tuple[dict, dict]:
    """The lease settings given on the command line, and all of them as the replicas run (the config's defaults for the rest)."""
    leadership = {k: v for k, v in (("lease_ttl_s", args.ttl), ("renew_every_s", args.renew), ("step_down_margin_s", args.margin)) if v is not None}
    settings = LeadershipConfig(advertise="127.0.0.1:1", **leadership)
    return leadership, {"lease_ttl_s": settings.lease_ttl_s, "renew_every_s": settings.renew_every_s, "step_down_margin_s": settings.step_down_margin_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kill-after", default="50,200,500", help="acknowledged submissions in a round before its kill (cycled)")
    parser.add_argument("--random", action="store_true", help="kill after a random 20..600 acknowledged instead")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--system", action="store_true", help="the whole system: Ray, an agent, emulated miners, a cap cut, a training job (PostgreSQL)")
    parser.add_argument("--ttl", type=float, default=None, help="lease_ttl_s (default: the config's default)")
    parser.add_argument("--renew", type=float, default=None, help="renew_every_s (default: the config's default)")
    parser.add_argument("--margin", type=float, default=None, help="step_down_margin_s (default: the config's default)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-failover-"))
    if args.system and args.store != "postgres":
        parser.error("--system runs on PostgreSQL only")
    if args.store == "postgres":
        from submit_throughput import postgres_server

        with postgres_server() as server:
            result = (run_system if args.system else run)(args, workdir, server.new_database())
    else:
        result = run(args, workdir, None)
    print(
        f"fail-over (kill -> first acknowledged submit): median {result['failover_s_median']:.2f}s, max {result['failover_s_max']:.2f}s "
        f"(goal < {GOAL_FAILOVER_S:g}s); acknowledged {result['acknowledged']}, lost {result['lost']}, duplicated {result['duplicated']}"
    )
    print(f"logs in {workdir / 'logs'}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
