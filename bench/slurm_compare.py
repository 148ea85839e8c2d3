"""Job submission throughput side by side with Slurm: Powerplane's durable SubmitJob
against Slurm's `sbatch` and Slurm's C submission API.

The same number of trivial jobs (default 1,000) from 8 concurrent clients, each client
one request at a time:

* Slurm, `sbatch`: 8 shell loops, each running `sbatch --hold --wrap true` N/8 times in
  sequence. `sbatch` is a process per job, so its start-up dominates this rate.
* Slurm, API: 8 processes of a tiny C program compiled here at run time with gcc and
  linked with -lslurm, each calling libslurm's `slurm_submit_batch_job` N/8 times with a
  held job (priority 0, the same script `#!/bin/sh\\ntrue`, the caller's environment as
  `sbatch` sends it). This is Slurm's own submission API without a process per job;
  a C helper rather than ctypes because `job_desc_msg_t` changes from release to
  release and is long: the installed `<slurm/slurm.h>` gets the layout right.
* Powerplane: 8 clients in 2 processes through bench/submit_throughput.py's
  `measure("submit", ...)` on a fresh LocalCluster scheduler (SQLite, WAL,
  synchronous=FULL: a reply means the job is on disk).

Slurm's rates are not durable in the same sense: before it replies, slurmctld writes the
job's script and environment into StateSaveLocation (a mkdir and two files, no fsync,
seen with strace); the job record itself (job_state, fsynced) is saved later by a
background thread. Its StateSaveLocation is in the same /tmp as Powerplane's database,
and its rate follows that disk: with StateSaveLocation on tmpfs it took about 3,000
jobs/s through the API here, against 450-1,500 on /tmp while other work used the disk.
Every method's count is checked (Slurm: `squeue -h -t PD` lists N pending jobs, which
are then cancelled; Powerplane: listing all jobs gives N).

The throwaway Slurm lives in a temp dir: slurm.conf with AuthType=auth/none and
CredType=cred/none (no munge), SlurmctldHost=<this host's short name>(127.0.0.2) and one
node `ppbench` with NodeAddr=127.0.0.2, NodeHostname=<short name>, started as
`slurmd -N ppbench`, so Slurm never has to resolve a name (neither /etc/hosts nor the
hostname is changed). The script adds 127.0.0.2/8 to `lo`, starts `slurmctld -D` and
`slurmd -D` as its children, waits until the node is idle, and stops both (and
everything else it started) when it ends, on error too. It refuses to run outside a
private network namespace. Run it as root, after `./scripts/setup.sh`:

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/slurm_compare.py [--jobs 1000]'

It needs Debian's Slurm and the libslurm header:
`apt-get install -y slurm-wlm libslurm-dev` (and gcc).

Prints figures, then one JSON line: jobs, clients, powerplane_jobs_per_s,
slurm_sbatch_jobs_per_s, slurm_api_jobs_per_s, ratio (Powerplane over Slurm's API),
slurm_version, powerplane_health_calls_per_s (the same Python clients' grpc.health.v1
Check calls: the ceiling of a unary call from them, with no work behind it), rounds,
per_round, durable. The figures are medians of --rounds rounds (default 3); each round
runs sbatch, the API, then Powerplane on a fresh scheduler while Slurm sits idle with no
job pending, so a load that comes and goes on the machine hits all three alike. Before
the first round Slurm takes one untimed warm-up round of N jobs through the API;
Powerplane's fresh scheduler gets only Health calls as warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

CLIENTS = 8
SLURM_ADDR = "127.0.0.2"
NODE = "ppbench"
PARTITION = "bench"
JOB_NAME = "pp-bench"

HELPER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

extern char **environ;

/* Submits argv[1] held batch jobs, one at a time, after "go" on stdin. */
int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 0;
    char cwd[4096];
    uint32_t env_size = 0;
    job_desc_msg_t desc;
    submit_response_msg_t *resp = NULL;
    char line[16];

    if (!getcwd(cwd, sizeof(cwd)))
        return 2;
    while (environ[env_size])
        env_size++;
    slurm_init(NULL);
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 2;
    for (int i = 0; i < count; i++) {
        slurm_init_job_desc_msg(&desc);
        desc.name = "%(name)s";
        desc.partition = "%(partition)s";
        desc.script = "#!/bin/sh\ntrue\n";
        desc.priority = 0; /* held, as sbatch --hold */
        desc.min_nodes = 1;
        desc.num_tasks = 1;
        desc.user_id = getuid();
        desc.group_id = getgid();
        desc.work_dir = cwd;
        desc.std_out = "/dev/null";
        desc.environment = environ;
        desc.env_size = env_size;
        if (slurm_submit_batch_job(&desc, &resp) != SLURM_SUCCESS) {
            fprintf(stderr, "slurm_submit_batch_job: %%s\n", slurm_strerror(slurm_get_errno()));
            return 1;
        }
        slurm_free_submit_response_response_msg(resp);
        resp = NULL;
    }
    return 0;
}
""" % {"name": JOB_NAME, "partition": PARTITION}

SBATCH_LOOP = (
    'echo ready; read go; i=0; while [ "$i" -lt "$1" ]; do '
    f"sbatch --hold -Q --parsable -J {JOB_NAME} -p {PARTITION} -N1 -n1 -o /dev/null --wrap true >/dev/null || exit 1; "
    "i=$((i + 1)); done"
)


class BenchError(Exception):
    pass


class CommandFailed(BenchError):
    pass


def _alarm(signum, frame):
    raise TimeoutError("the benchmark ran past --timeout")


def private_network_namespace() -> bool:
    """True where this process is not in init's network namespace (or, where that can't be read, sees only `lo`)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    except OSError:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
        return [line.split(":")[0].strip() for line in lines] == ["lo"]


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root inside a private network namespace: unshare -n sh -c 'ip link set lo up; ...'")
    if not private_network_namespace():
        raise SystemExit(
            "refusing to start Slurm in the host's network namespace: unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/slurm_compare.py'"
        )
    missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo") if not shutil.which(tool)]
    if missing:
        raise SystemExit(f"Slurm not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm")
    if not Path("/usr/include/slurm/slurm.h").exists():
        raise SystemExit("libslurm's header is missing (/usr/include/slurm/slurm.h): apt-get install -y libslurm-dev")
    if not shutil.which("gcc"):
        raise SystemExit("gcc is needed to build the libslurm submission helper")


def slurm_version() -> str:
    """`slurmctld -V` ("slurm-wlm 22.05.8"); sbatch --version wants a configuration first."""
    out = subprocess.run(["slurmctld", "-V"], capture_output=True, text=True, timeout=30).stdout.strip()
    return out.split()[-1] if out else "unknown"


def write_conf(root: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=ppbench",
                f"SlurmctldHost={host}({SLURM_ADDR})",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/none",
                "CredType=cred/none",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "MpiDefault=none",
                "MaxJobCount=1000000",
                "ReturnToService=2",
                f"NodeName={NODE} NodeAddr={SLURM_ADDR} NodeHostname={host} CPUs={os.cpu_count() or 1} State=UNKNOWN",
                f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    return conf


def run(cmd: list[str], timeout: float = 60) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise CommandFailed(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def pending_count() -> int:
    return len(run(["squeue", "-h", "-t", "PD", "-o", "%i"], timeout=120).split())


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (CommandFailed, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise BenchError(f"timed out waiting for {what}")


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group we started (slurmctld forks slurmscriptd), then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group may outlive its leader
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def timed_clients(cmds: list[list[str]], timeout: float, procs: list[subprocess.Popen]) -> float:
    """Start every client, wait until each is ready, say go to all at once, and time them until the last exits."""
    clients = []
    for cmd in cmds:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(proc)
        clients.append(proc)
    for proc in clients:
        if proc.stdout.readline().strip() != "ready":
            raise BenchError(f"client {proc.args} did not start: {proc.stderr.read().strip()}")
    start = time.perf_counter()
    for proc in clients:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    deadline = time.monotonic() + timeout
    for proc in clients:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    elapsed = time.perf_counter() - start
    for proc in clients:
        if proc.returncode:
            raise BenchError(f"client {proc.args} failed ({proc.returncode}): {proc.stderr.read().strip()}")
    return elapsed


class Slurm:
    """A throwaway slurmctld + slurmd in a temp dir, and the two ways of submitting to it."""

    def __init__(self, jobs: int, clients: int) -> None:
        self.jobs, self.clients = jobs, clients
        self.counts = [jobs // clients + (1 if i < jobs % clients else 0) for i in range(clients)]
        self.timeout = 60 + jobs / 10
        self.root = Path(tempfile.mkdtemp(prefix="pp-bench-slurm-"))
        self.helper = self.root / "submit_helper"
        self.procs: list[subprocess.Popen] = []
        self.daemons: list[subprocess.Popen] = []

    def start(self) -> None:
        os.environ["SLURM_CONF"] = str(write_conf(self.root))
        subprocess.run(["ip", "addr", "add", f"{SLURM_ADDR}/8", "dev", "lo"], capture_output=True, timeout=30)  # "exists": fine
        (self.root / "submit_helper.c").write_text(HELPER_C)
        run(["gcc", "-O2", "-o", str(self.helper), str(self.root / "submit_helper.c"), "-lslurm"], timeout=120)
        for cmd, log in ((["slurmctld", "-D"], "slurmctld.out"), (["slurmd", "-D", "-N", NODE], "slurmd.out")):
            with open(self.root / "log" / log, "w") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            self.daemons.append(proc)
            self.procs.append(proc)
        wait_for("slurmctld and slurmd (node idle)", self._node_idle, 60)
        # Warm-up, not timed, cancelled like every round.
        self._round("warm-up", [[str(self.helper), str(c)] for c in self.counts])

    def _node_idle(self) -> bool:
        for daemon in self.daemons:
            if daemon.poll() is not None:
                raise BenchError(f"{daemon.args[0]} exited ({daemon.returncode}); see {self.root / 'log'}")
        return run(["sinfo", "-h", "-n", NODE, "-o", "%t"], timeout=10).strip() == "idle"

    def _round(self, label: str, cmds: list[list[str]]) -> float:
        if pending_count():
            raise BenchError(f"{label}: jobs pending before the round")
        elapsed = timed_clients(cmds, self.timeout, self.procs)
        pending = pending_count()
        if pending != self.jobs:
            raise BenchError(f"{label}: expected {self.jobs} pending jobs, squeue lists {pending}")
        run(["scancel", "--state=PENDING"], timeout=120)
        wait_for("the cancelled jobs to leave the pending list", lambda: pending_count() == 0, 120)
        return elapsed

    def sbatch(self) -> float:
        return self._round("sbatch", [["sh", "-c", SBATCH_LOOP, "sbatch-loop", str(c)] for c in self.counts])

    def api(self) -> float:
        return self._round("slurm_submit_batch_job", [[str(self.helper), str(c)] for c in self.counts])

    def stop(self) -> None:
        stop(self.procs)
        for daemon in self.daemons:
            if daemon.returncode not in (0, -signal.SIGTERM):
                print(f"note: {daemon.args[0]} exited with {daemon.returncode}; logs in {self.root / 'log'}", flush=True)


def bench_powerplane(jobs: int, clients: int, processes: int, workdirs: list[Path]) -> tuple[float, float]:
    """(seconds for `jobs` durable SubmitJob calls, seconds for as many Health calls) on a fresh scheduler."""
    from submit_throughput import measure

    from powerplane_dev.cluster import LocalCluster
    from scheduler.client import Client

    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-slurmcmp-"))
    workdirs.append(workdir)  # removed at the end: LocalCluster points RAY_AUTH_TOKEN_PATH at the first one
    cluster = LocalCluster(workdir, [], site_timeout_s=30, heartbeat_interval_s=5)
    try:
        cluster.start_scheduler()
        target, token = cluster.scheduler_target, cluster.tenant_token("acme")
        # Warm-up, then the same clients' grpc.health.v1 Check calls: the ceiling of a unary call from these
        # Python clients, with no work behind it (as in submit_throughput.py).
        measure("health", target, token, min(jobs, 200), clients, processes)
        health_s = measure("health", target, token, jobs, clients, processes)
        submit_s = measure("submit", target, token, jobs, clients, processes)
        with Client(target, token) as client:
            stored = sum(1 for _ in client.list_all())
        if stored != jobs:
            raise BenchError(f"powerplane: expected {jobs} stored jobs, found {stored}")
        return submit_s, health_s
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--processes", type=int, default=2, help="processes hosting Powerplane's clients")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of sbatch, API, Powerplane; medians reported")
    parser.add_argument("--timeout", type=int, default=900, help="seconds for the whole run")
    args = parser.parse_args()
    check_prerequisites()
    version = slurm_version()
    package = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "slurm-wlm"], capture_output=True, text=True).stdout

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(args.timeout)
    print(f"{args.jobs} held jobs from {args.clients} clients, each one at a time; {args.rounds} rounds", flush=True)
    rates: dict[str, list[float]] = {"sbatch": [], "api": [], "powerplane": [], "health": []}
    slurm = Slurm(args.jobs, args.clients)
    workdirs: list[Path] = []
    ok = False
    try:
        slurm.start()
        print(f"slurm {version} (Debian slurm-wlm {package or '?'}) up in {slurm.root}, slurmctld on {SLURM_ADDR}", flush=True)
        for r in range(args.rounds):
            rates["sbatch"].append(args.jobs / slurm.sbatch())
            rates["api"].append(args.jobs / slurm.api())
            submit_s, health_s = bench_powerplane(args.jobs, args.clients, args.processes, workdirs)  # slurm idle, nothing pending
            rates["powerplane"].append(args.jobs / submit_s)
            rates["health"].append(args.jobs / health_s)
            print(
                f"round {r + 1}: sbatch {rates['sbatch'][-1]:5.0f}  slurm API {rates['api'][-1]:5.0f}  "
                f"powerplane {rates['powerplane'][-1]:5.0f} jobs/s  (powerplane Health {rates['health'][-1]:5.0f} calls/s)",
                flush=True,
            )
        ok = True
    except (BenchError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        slurm.stop()
        import multiprocessing

        for child in multiprocessing.active_children():
            child.terminate()
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
        if ok:
            shutil.rmtree(slurm.root, ignore_errors=True)
        else:
            print(f"slurm's files and logs kept in {slurm.root}", file=sys.stderr)

    pp, sb, api, health = (statistics.median(rates[k]) for k in ("powerplane", "sbatch", "api", "health"))
    print(f"medians of {args.rounds} rounds, {args.jobs} jobs each (every round's count checked):")
    print(f"  powerplane SubmitJob, durable (fsync before reply) : {pp:7.0f} jobs/s")
    print(f"  slurm sbatch --hold                                : {sb:7.0f} jobs/s")
    print(f"  slurm slurm_submit_batch_job, held (reply first)   : {api:7.0f} jobs/s")
    print(f"  powerplane Health baseline (same Python clients)   : {health:7.0f} calls/s")
    print(f"ratio powerplane / slurm API: {pp / api:.2f}  (/ sbatch: {pp / sb:.2f})")
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "clients": args.clients,
                "rounds": args.rounds,
                "powerplane_jobs_per_s": round(pp, 1),
                "slurm_sbatch_jobs_per_s": round(sb, 1),
                "slurm_api_jobs_per_s": round(api, 1),
                "ratio": round(pp / api, 3),
                "slurm_version": version,
                "powerplane_health_calls_per_s": round(health, 1),
                "per_round": {k: [round(v) for v in vs] for k, vs in rates.items()},
                "durable": {
                    "powerplane": "fsync before reply (SQLite WAL synchronous=FULL)",
                    "slurm": "reply before state save",
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
