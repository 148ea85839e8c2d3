"""The fail-over drill: kill -9 the leading scheduler replica while the whole system
works, and the figures of what that must not break. tests/integration/test_failover_system.py
runs one round and asserts on it; `bench/failover.py --system` runs rounds and prints them.

The system (`FailoverDrill`): two (or more) scheduler replicas on one PostgreSQL
database (powerplane_dev/replicas.py), one Ray node for one power-managed site, tx-1
(region tx: 4 virtual GPUs, 19 kW at the meter, air cooling, 4 emulated Braiins OS S21
miners in one rack on 127.x.y.z port 80, driven by the agent through pyasic_rs from a
Ray actor), its agent given every replica's address. Region us has no site: jobs sent
there stay pending.

Before the rounds a grid cap cut (`CUT_W`, for an hour) is posted once the site draws
more than the cut allows, and waited for until the agent holds it and the site is
under it: mining is curtailed and the cut stays in force through every round. The
figures keep every miner running at a power limit under the cut whatever the GPUs
draw: a new split that pauses one miner and raises the others' limits is sent to all
of them at once (agents/miners/group.py), and with the emulator's equal 2 s ramps the
raised miners get there before the paused one has come down, a transient of some
hundreds of watts over the meter's previous draw, which has nothing to do with
fail-over and is kept out of this drill. A round
(`run_round`) submits a training job (examples/training/train_regression.py, 2 GPUs,
checkpoints), waits until it is past its first checkpoint, starts `Submitters` (8
threads, each request retried with its client_request_id until acknowledged; two small
jobs, 2 s sleeps on tx-1, the others pending in region us) and, once
enough were acknowledged and a small job has started, kill -9s the leader's process
group. It then measures, from the kill: takeover (a replica answers SERVING), the
agent's site READY on the new leader, the first acknowledgement of a submission sent
after the kill; lets the submitters go on until as many more were acknowledged and
two more small jobs were sent, and waits for the training job and the small jobs to end.

What it reads back, beside the timings: the jobs table itself (psycopg) and ListJobs
on the leader (acknowledged request ids with no job, or with two), the runs Ray's Jobs
API holds for the site (a job with two Ray jobs was started twice: nothing here
preempts or fails a job, so each job runs at most once), and a thread's samples of the
agent's /metrics (metered power, the cap it holds, its stream), which must stay under
both the agent's cap and the cut through the kill and the fail-over.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from powerplane_dev.cluster import ROOT, SchedulerReplica, SitePowerSpec, SiteSpec, emulated_fleet, wait_for
from powerplane_dev.replicas import NOT_SERVING, ReplicatedCluster, SystemSampler, over_cap, seconds_over

SITE_ID, REGION, NO_SITE_REGION = "tx-1", "tx", "us"
# 4 S21 miners run at a power limit each in [2.4, 3.5] kW: 9.6-14 kW. The cut leaves mining
# 14.18 kW less the GPUs (0.6 kW idle, 4 kW with all 4 at load): always less than the 14 kW
# it draws uncut, and always above 9.6 kW, so every miner keeps running at a lower limit and
# no miner is paused while others are raised (see the module docstring).
INTERCONNECT_W = 19_000.0
CUT_W = 15_600.0
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)  # retried with the same request id: idempotent
SMALL_JOB_S = 2


def drill_site(miners_base: str) -> SiteSpec:
    power = SitePowerSpec(
        interconnect_cap_mw=INTERCONNECT_W / 1e6,
        cooling="air",
        gpu_load_w=1000,
        gpu_idle_w=150,
        market_node="HB_WEST",
        fleets=(emulated_fleet("drill-s21", "S21", 4, miners_base, group_size=4, ramp_down_s=2, ramp_up_s=2),),
    )
    return SiteSpec(SITE_ID, REGION, gpus=4, cpus=4, power=power)


@dataclass(frozen=True)
class Ack:
    request_id: str
    job_id: str
    sent_at: float  # time.monotonic() of the attempt acknowledged
    acked_at: float
    runnable: bool  # a small job for tx-1, not one left pending


class Submitters:
    """`clients` threads, each its own Client given every replica's address, submitting one
    job at a time; a request refused UNAVAILABLE or timed out goes again with the SAME
    client_request_id until acknowledged (up to `give_up_s`); any other error ends that
    thread, in `failures`. Errors are counted by gRPC code in `errors`."""

    def __init__(
        self, target: str, token: str, prefix: str, clients: int = 8, runnable: int = 2, runnable_every: int = 8, pace_s: float = 0.1, give_up_s: float = 120.0
    ):
        # Thread n's submission i may be a small job for tx-1 when (n + i) % runnable_every == 0, while
        # `runnable` allow it (`allow` adds more): a few small jobs, spread over the threads. Each thread
        # waits `pace_s` between acknowledged submissions, to keep the load (and the job count) small.
        from scheduler.client import spec

        self.target, self.token, self.prefix, self.give_up_s, self.runnable_every = target, token, prefix, give_up_s, runnable_every
        self.small = spec(f"{sys.executable} -c 'import time; time.sleep({SMALL_JOB_S})'", gpus=1, allowed_regions=[REGION])
        self.pending = spec("python train.py", gpus=1, allowed_regions=[NO_SITE_REGION])
        self.runnable_left, self.pace_s = runnable, pace_s
        self.acks: list[Ack] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._submitter, args=(n,), name=f"submitter-{n}", daemon=True) for n in range(clients)]

    def start(self) -> Submitters:
        for thread in self.threads:
            thread.start()
        return self

    def count(self) -> int:
        return len(self.acks)

    def first_ack_sent_after(self, at: float) -> Ack | None:
        return next((a for a in list(self.acks) if a.sent_at > at), None)

    def _submitter(self, n: int) -> None:
        from scheduler.client import Client

        with Client(self.target, self.token, timeout_s=5) as client:
            i = 0
            while not self._stop.is_set():
                request_id, runnable = f"{self.prefix}-c{n}-{i}", (n + i) % self.runnable_every == 0 and self._take_runnable()
                give_up = time.monotonic() + self.give_up_s
                while True:  # the same request id until it is acknowledged
                    sent = time.monotonic()
                    try:
                        job = client.submit(self.small if runnable else self.pending, client_request_id=request_id).job
                        break
                    except grpc.RpcError as err:
                        with self.lock:
                            self.errors[err.code().name if err.code() else "UNKNOWN"] += 1
                        if err.code() not in RETRIED or time.monotonic() > give_up:
                            self.failures.append(f"{request_id}: {err.code().name if err.code() else '?'} {err.details()}")
                            return
                        time.sleep(0.1)  # the client already followed the refusal's hint or moved to the next address
                with self.lock:
                    self.acks.append(Ack(request_id, job.job_id, sent, time.monotonic(), runnable))
                i += 1
                self._stop.wait(self.pace_s)

    def _take_runnable(self) -> bool:
        with self.lock:
            if self.runnable_left <= 0:
                return False
            self.runnable_left -= 1
            return True

    def allow(self, runnable: int) -> None:
        """`runnable` more small jobs for tx-1, from the next submissions."""
        with self.lock:
            self.runnable_left += runnable

    def stop(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(self.give_up_s + 10)


@dataclass
class Round:
    """One kill and what followed it (times in seconds from the kill)."""

    number: int
    training_job: str
    killed: str
    leader: str
    acknowledged_at_kill: int
    training_step_at_kill: int
    killed_at: float  # time.monotonic() of the kill (the acknowledgements' clock)
    killed_at_wall: float  # time.time() of the kill (Ray's job times are wall clock)
    takeover_s: float  # a replica answers SERVING
    agents_reconnected_s: float  # the agent's site READY on the new leader
    failover_s: float  # the first acknowledgement of a submission sent after the kill
    submitters: Submitters = field(repr=False)


class FailoverDrill:
    def __init__(self, workdir: Path, dsn: str, leadership: dict, miners_base: str = "127.41.0.1", replicas: int = 2):
        self.dsn = dsn
        self.cluster = ReplicatedCluster(
            workdir,
            [drill_site(miners_base)],
            regions=(NO_SITE_REGION, REGION),
            site_timeout_s=12.0,
            heartbeat_interval_s=1.0,
            # Test-speed mining (no dwell times) and cap planning, as the shared integration system has.
            scheduler_settings={"mining": {"min_on_s": 0, "min_off_s": 0}, "cap_lead_s": 2.0, "power_interval_s": 0.5},
            dsn=dsn,
            replica_count=replicas,
            leadership=leadership,
            own_agent_ports=True,  # the shared integration cluster may be running beside this one
        )
        self.sampler: SystemSampler | None = None
        self.ops = self.acme = None
        self.cut_in_force_at: float | None = None  # time.monotonic(): the agent holds the cut and the site is under it

    # ----------------------------------------------------------------- the system
    def start(self) -> None:
        from scheduler.client import Client

        cluster = self.cluster
        cluster.start_ray()
        cluster.start_scheduler()
        cluster.start_miner_emulators()
        cluster.start_agents()
        cluster.wait_jobs_accepted()  # before any run is sent to Ray: its agent gives a run three tries only
        self.ops = Client(cluster.scheduler_target, cluster.operator_token, timeout_s=10)
        self.acme = Client(cluster.scheduler_target, cluster.tenant_token("acme"), timeout_s=10)
        cluster.wait_sites_ready(self.ops, timeout_s=120)
        self.sampler = SystemSampler(cluster, SITE_ID).start()

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        for client in (self.ops, self.acme):
            if client is not None:
                client.close()
        self.cluster.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The logs' tails, for a failure's message."""
        parts = [f"--- {r.name} ({'alive' if r.process.alive else 'dead'}):\n{r.process.tail(lines)}" for r in self.cluster.replicas]
        parts += [f"--- {p.name}:\n{p.tail(lines)}" for p in self.cluster.agents.values()]
        return "\n".join(parts)

    # ----------------------------------------------------------------- the cap cut
    def cut_cap(self, event_id: str = "drill-cut", cap_w: float = CUT_W, lead_s: float = 5.0, duration_s: float = 3600.0) -> float:
        """Wait until mining draws more than the cut leaves it, post the cut `lead_s` ahead,
        and wait until the agent holds it and the site is under it. Returns that moment (monotonic)."""
        from scheduler.api.convert import timestamp
        from scheduler.api.v1 import operator_pb2

        wait_for(lambda: self.sampler.samples and self.sampler.samples[-1].metered_w > cap_w + 100, 120, "the site drawing more than the cut will allow")
        start = time.time() + lead_s
        self.ops.post_grid_event(
            operator_pb2.GridEvent(
                event_id=event_id,
                kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
                site_id=SITE_ID,
                cap_w=cap_w,
                start=timestamp(start),
                end=timestamp(start + duration_s),
                reason="fail-over drill",
            )
        )

        def in_force() -> bool:
            sample = self.sampler.samples[-1] if self.sampler.samples else None
            return sample is not None and abs(sample.cap_w - cap_w) <= 1.0 and sample.metered_w <= cap_w + 1.0

        wait_for(in_force, 60 + lead_s, "the cap cut held by the agent with the site under it")
        self.cut_in_force_at = time.monotonic()
        return self.cut_in_force_at

    def cut_status(self, event_id: str = "drill-cut"):
        return next(e for e in self.ops.grid_events(site_id=SITE_ID).events if e.event.event_id == event_id)

    # ----------------------------------------------------------------- a round
    def submit_training(self, request_id: str, steps: int, every: int, step_sleep_s: float = 0.1) -> str:
        from scheduler.client import spec

        entry = f"{sys.executable} {ROOT}/examples/training/train_regression.py --steps {steps} --checkpoint-every {every} --step-sleep-s {step_sleep_s} --workers 1"
        return self.acme.submit(spec(entry, gpus=2, allowed_regions=[REGION]), request_id).job.job_id

    def job(self, job_id: str):
        return self.acme.get(job_id)

    def wait_job(self, job_id: str, states: set[int], timeout_s: float, what: str):
        """Wait until the job is in one of `states` (calls refused during a fail-over are retried)."""
        return wait_for(lambda: (job := self.acme.get(job_id)).state in states and job, timeout_s, what)

    def run_round(self, number: int, steps: int = 150, every: int = 15, kill_after: int = 24, clients: int = 8, timeout_s: float = 180.0) -> Round:
        """A training job past its first checkpoint, submitters going and a small job started
        on tx-1; kill -9 the leader; wait for the new leader, the agent and the submitters,
        then for `kill_after` more acknowledgements and the training job's end (it is left to
        the caller to check how it ended)."""
        from scheduler.api.v1 import types_pb2 as T

        training = self.submit_training(f"drill-train-{number}", steps, every)
        wait_for(lambda: self.acme.get(training).checkpoint.checkpoint_step >= every, timeout_s, f"training job {training} past its first checkpoint")
        submitters = Submitters(self.cluster.scheduler_target, self.cluster.tenant_token("acme"), f"r{number}", clients=clients).start()
        started = {T.JOB_STATE_RUNNING, T.JOB_STATE_SUCCEEDED}

        def ready_to_kill() -> bool:
            if submitters.failures:
                raise RuntimeError(f"a submitter gave up: {submitters.failures[:3]}")
            small = [a.job_id for a in list(submitters.acks) if a.runnable]
            return submitters.count() >= kill_after and any(self.acme.get(j).state in started for j in small[:4])

        wait_for(ready_to_kill, timeout_s, f"{kill_after} acknowledgements and a small job started on {SITE_ID}")
        step_at_kill = self.acme.get(training).checkpoint.step
        acked_at_kill = submitters.count()
        killed = self.cluster.kill_leader()
        killed_at, killed_at_wall = time.monotonic(), time.time()
        leader = self.cluster.wait_leader(timeout_s, other_than=killed)
        took_over = time.monotonic()
        submitters.allow(2)  # small jobs the new leader must place
        reconnected = wait_for(lambda: self._site_ready_on(leader) and time.monotonic(), timeout_s, f"{SITE_ID} READY on {leader.name}", interval_s=0.05)
        first = wait_for(lambda: submitters.first_ack_sent_after(killed_at), timeout_s, "a submission sent after the kill acknowledged", interval_s=0.02)

        def after_the_kill() -> bool:
            acks = list(submitters.acks)
            return bool(submitters.failures) or (len(acks) >= acked_at_kill + kill_after and any(a.runnable and a.sent_at > killed_at for a in acks))

        wait_for(after_the_kill, timeout_s, f"{kill_after} submissions on the new leader, one of them a small job for {SITE_ID}")
        submitters.stop()
        if submitters.failures:
            raise RuntimeError(f"a submitter gave up: {submitters.failures[:3]}")
        ended = {T.JOB_STATE_SUCCEEDED, T.JOB_STATE_FAILED, T.JOB_STATE_CANCELLED}
        self.wait_job(training, ended, 300, f"training job {training} to end")
        for ack in submitters.acks:
            if ack.runnable:
                self.wait_job(ack.job_id, ended, 300, f"small job {ack.job_id} to end")
        return Round(
            number=number,
            training_job=training,
            killed=killed.name,
            leader=leader.name,
            acknowledged_at_kill=acked_at_kill,
            training_step_at_kill=step_at_kill,
            killed_at=killed_at,
            killed_at_wall=killed_at_wall,
            takeover_s=took_over - killed_at,
            agents_reconnected_s=reconnected - killed_at,
            failover_s=first.acked_at - killed_at,
            submitters=submitters,
        )

    def _site_ready_on(self, replica: SchedulerReplica) -> bool:
        """The site READY on this replica itself (a site a new leader loads starts DISCONNECTED)."""
        from scheduler.api.v1 import types_pb2 as T
        from scheduler.client import Client

        with Client(replica.address, self.cluster.operator_token, timeout_s=2) as ops:
            return ops.site(SITE_ID).site.state == T.SITE_STATE_READY

    def restart(self, replica_name: str, timeout_s: float = 60.0) -> None:
        """Start a killed replica again; it stands by."""
        replica = next(r for r in self.cluster.replicas if r.name == replica_name)
        replica.process.start()
        wait_for(lambda: replica.health() == NOT_SERVING, timeout_s, f"{replica.name} standing by again")

    # ----------------------------------------------------------------- reading back
    def stored_jobs(self) -> dict[str, list[str]]:
        """client_request_id -> job ids, from the jobs table itself."""
        import psycopg

        found: dict[str, list[str]] = collections.defaultdict(list)
        with psycopg.connect(self.dsn) as conn:
            for request_id, job_id in conn.execute("SELECT client_request_id, job_id FROM jobs"):
                found[request_id].append(job_id)
        return found

    def listed_jobs(self, replica: SchedulerReplica) -> dict[str, list[str]]:
        """client_request_id -> job ids, as this replica's ListJobs shows acme's jobs."""
        from scheduler.client import Client

        found: dict[str, list[str]] = collections.defaultdict(list)
        with Client(replica.address, self.cluster.tenant_token("acme"), timeout_s=30) as acme:
            for job in acme.list_all():
                found[job.client_request_id].append(job.job_id)
        return found

    def runs_on_ray(self) -> dict[str, list]:
        """job id -> its Ray jobs on the site (JobDetails, one per run started)."""
        found: dict[str, list] = collections.defaultdict(list)
        for ray_job in self.cluster.ray_jobs(SITE_ID):
            found[ray_job.metadata["powerplane_job"]].append(ray_job)
        return found

    def double_runs(self) -> dict[str, list[str]]:
        """Jobs started more than once: job id -> the run ids Ray holds for it."""
        return {job: sorted(r.submission_id for r in runs) for job, runs in self.runs_on_ray().items() if len(runs) > 1}

    def power_samples(self):
        """The agent's samples since the cut was in force."""
        return self.sampler.since(self.cut_in_force_at)

    def cap_exceeded(self) -> list:
        return over_cap(self.power_samples(), CUT_W)

    def cap_exceeded_s(self) -> float:
        return seconds_over(self.power_samples(), CUT_W)
