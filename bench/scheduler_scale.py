"""Scale of the real shell: the scheduler's controller and power state machine, in
process (no gRPC), with a real SQLite store in a temporary directory and a fake clock.

100 sites whose agents are simulated; 100,000 miners in all (2 to 4 fleets per site,
1,000 miners a site), 10,000 GPUs (100 a site), 10,000 active jobs (RUNNING, 100 a
site, one GPU each: every GPU is busy) and 1,000 pending jobs (1 to 8 GPUs, which
therefore wait with a reason). Jobs are written to the store in one transaction before
`Controller.start()` loads them; each site's agent then attaches with its runs.

Every simulated second (the fake clock moves 1 s): every site's agent takes the orders
from its session's outbox (mining targets are reached at once, starts run, stops end),
then sends one heartbeat: `on_run_reports(site, reports)` (all its active runs) and
`on_reading(site, reading)` (its fleets, GPU and meter power), as
scheduler/server/agent_service.py does. Then one pass: `schedule_once()`, then
`dispatch_power(sweep=True)`. The controller's background loops (schedule, power,
liveness, scaling) are not started (`start(loops=False)`): this script drives every pass itself,
once per simulated second, so each figure is the time of one call and nothing else
(`--with-loops` leaves them running, kicked as in production; their work then lands
inside whichever call awaits a commit).

Then a cap event on 10 sites at once: 10 CAP_LIMIT grid events in force now, each
cutting its site below what its AI runs draw at full power with mining paused, so the
ladder climbs (mining to its floor, training power-capped, then preempted).
`cap_event_orders_ms` runs from the first `post_grid_event` (all 10 posted together)
until every resulting order is in the sites' `AgentSession.outbox` queues (the commit
of their records and transitions, an fsync, included). Then more seconds run with
the cap in force (`after_cap_pass_*`).

A second, smaller configuration (1,000 active jobs, 10 GPUs a site, 100 pending) runs
first, in a fresh process, for `rss_mb_small` (ru_maxrss is a peak per process).

    .venv/bin/python bench/scheduler_scale.py [--seconds 60] [--profile]

`--profile` writes the top cProfile entries of the passes and of the cap event to
stderr. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import json
import logging
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.core.decisions import SetMiningTargets, StartRun, StopRun  # noqa: E402
from scheduler.core.grid import GridEvent, GridEventKind  # noqa: E402
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources, new_job, transition  # noqa: E402
from scheduler.core.power import MINER_MODELS, Cooling, Fleet, SitePower  # noqa: E402
from scheduler.core.power_state import PowerReading  # noqa: E402
from scheduler.core.runs import RunReport, RunState  # noqa: E402
from scheduler.core.sites import GpuNode  # noqa: E402
from scheduler.server.config import SchedulerConfig  # noqa: E402
from scheduler.server.controller import Controller  # noqa: E402
from scheduler.store.sqlite import SqliteStore  # noqa: E402

NOW = 1_800_000_000.0
REGIONS = ("us", "eu", "no")
MODELS = ("S19XP", "S21", "A2")
OVERHEAD = Cooling.AIR.default_overhead
GPU_LOAD_W, GPU_IDLE_W = 1000.0, 150.0
CAP_SITES = 10
GOAL_PASS_P99_MS, GOAL_CAP_EVENT_MS = 50.0, 20.0


@dataclasses.dataclass(frozen=True)
class Shape:
    sites: int = 100
    miners: int = 100_000
    gpus_per_site: int = 100
    active_jobs: int = 10_000
    pending_jobs: int = 1_000


LARGE = Shape()
SMALL = Shape(gpus_per_site=10, active_jobs=1_000, pending_jobs=100)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def site_id(i: int) -> str:
    return f"site-{i:03d}"


def site_power(i: int, shape: Shape, rng: random.Random) -> SitePower:
    """2 to 4 fleets (counts summing to the site's share of the miners); the cap fits
    every GPU at load and every miner at stock, with the facility overhead."""
    n_fleets = 2 + i % 3
    share = shape.miners // shape.sites
    cuts = sorted(rng.sample(range(1, share), n_fleets - 1))
    counts = [b - a for a, b in zip([0, *cuts], [*cuts, share])]
    fleets = tuple(Fleet(f"{site_id(i)}-f{j}", MINER_MODELS[MODELS[(i + j) % 3]], c) for j, c in enumerate(counts))
    it_w = shape.gpus_per_site * GPU_LOAD_W + sum(f.max_w for f in fleets)
    return SitePower(
        site_id(i), cap_w=it_w * OVERHEAD, overhead=OVERHEAD, fleets=fleets, gpus=shape.gpus_per_site, gpu_load_w=GPU_LOAD_W, gpu_idle_w=GPU_IDLE_W
    )


def build_jobs(shape: Shape, rng: random.Random) -> tuple[list, dict[str, list[str]]]:
    """Active jobs RUNNING (one GPU each, 60 % training with a slowdown tolerance,
    40 % plain inference), spread evenly over the sites, then the pending jobs."""
    jobs, runs_by_site = [], {site_id(i): [] for i in range(shape.sites)}
    seq = 0
    for n in range(shape.active_jobs):
        seq += 1
        training = rng.random() < 0.6
        spec = JobSpec(
            JobKind.TRAINING if training else JobKind.INFERENCE,
            "python run.py",
            Resources(gpus=1),
            priority=rng.randint(0, 5),
            allowed_regions=(REGIONS[(n % shape.sites) % 3],),
            slowdown_tolerance_pct=rng.choice([0, 10, 25, 50]) if training else 0,
        )
        job, _ = new_job(f"job-a{n:06d}", f"tenant-{n % 20}", f"a{n}", spec, seq, NOW - 600)
        where = site_id(n % shape.sites)
        job, _ = transition(job, JobState.SCHEDULED, f"placed on {where}", NOW - 590, site_id=where, attempt=1)
        job, _ = transition(job, JobState.RUNNING, f"running on {where}", NOW - 580, started_at=NOW - 580)
        jobs.append(job)
        runs_by_site[where].append(job.run_id)
    for n in range(shape.pending_jobs):
        seq += 1
        spec = JobSpec(
            JobKind.TRAINING if rng.random() < 0.7 else JobKind.INFERENCE,
            "python run.py",
            Resources(gpus=rng.choice([1, 2, 4, 8])),
            priority=rng.randint(0, 5),
            allowed_regions=(rng.choice(REGIONS),),
            slowdown_tolerance_pct=rng.choice([0, 10, 25, 50]),
        )
        jobs.append(new_job(f"job-p{n:06d}", f"tenant-{n % 20}", f"p{n}", spec, seq, NOW - 60)[0])
    return jobs, runs_by_site


class Agent:
    """A simulated site agent: follows its orders at once and reports every second."""

    def __init__(self, power: SitePower, runs: list[str]):
        self.power = power
        self.running: dict[str, None] = dict.fromkeys(runs)
        self.ended: list[str] = []  # stopped since the last heartbeat: reported STOPPED once
        self.targets = {f.fleet_id: f.max_w for f in power.fleets}
        self.session = None

    def take_orders(self) -> int:
        taken = 0
        outbox = self.session.outbox
        while not outbox.empty():
            order = outbox.get_nowait()
            taken += 1
            if isinstance(order, SetMiningTargets):
                self.targets.update(order.targets_w)
            elif isinstance(order, StartRun):
                self.running[order.run_id] = None
            elif isinstance(order, StopRun) and self.running.pop(order.run_id, 0) is None:
                self.ended.append(order.run_id)
        return taken

    def heartbeat(self) -> tuple[list[RunReport], PowerReading]:
        reports = [RunReport(r, RunState.RUNNING) for r in self.running]
        reports += [RunReport(r, RunState.STOPPED) for r in self.ended]
        self.ended = []
        gpu_w = len(self.running) * GPU_LOAD_W + (self.power.gpus - len(self.running)) * GPU_IDLE_W
        it_w = gpu_w + sum(self.targets.values())
        fleets = {f: (w, w) for f, w in self.targets.items()}
        return reports, PowerReading(fleets, it_w=it_w, gpu_w=gpu_w, meter_w=it_w * OVERHEAD, active_runs=frozenset(self.running))


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Profiles:
    """cProfile of the passes and of the cap event (each summed over its calls)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.by_name: dict[str, cProfile.Profile] = {}

    def profiler(self, name: str) -> cProfile.Profile | None:
        if not self.enabled:
            return None
        return self.by_name.setdefault(name, cProfile.Profile())

    def report(self, top: int) -> str:
        out = io.StringIO()
        for name, profile in self.by_name.items():
            out.write(f"\n===== {name}: top {top} by cumulative time =====\n")
            pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
            out.write(f"\n===== {name}: top {top} by own time =====\n")
            pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
        return out.getvalue()


async def timed(coro_fn, profile: cProfile.Profile | None) -> float:
    if profile is not None:
        profile.enable()
    started = time.perf_counter()
    await coro_fn()
    spent = time.perf_counter() - started
    if profile is not None:
        profile.disable()
    return spent


async def run(shape: Shape, seconds: int, after_cap_seconds: int, with_loops: bool, profiles: Profiles, db_dir: str) -> dict:
    rng = random.Random(7)
    jobs, runs_by_site = build_jobs(shape, rng)
    powers = [site_power(i, shape, rng) for i in range(shape.sites)]
    store = SqliteStore(Path(db_dir) / "pp.db")
    store.commit(jobs, [], [])
    commits: list[tuple[float, float]] = []  # (started, seconds) of each store commit, in the store's thread
    store_commit = store.commit

    def timed_commit(*args):
        started = time.perf_counter()
        try:
            return store_commit(*args)
        finally:
            commits.append((started, time.perf_counter() - started))

    store.commit = timed_commit
    del jobs
    config = SchedulerConfig(
        regions=list(REGIONS),
        database=Path(db_dir) / "pp.db",
        schedule_interval_s=3600,
        power_interval_s=3600,
        site_timeout_s=7200,
        heartbeat_interval_s=1,
    )
    clock = Clock()
    controller = Controller(store, config, clock)
    await controller.start(loops=with_loops)
    try:
        agents: dict[str, Agent] = {}
        for i, power in enumerate(powers):
            agent = agents[power.site_id] = Agent(power, runs_by_site[power.site_id])
            nodes = tuple(GpuNode(f"{power.site_id}-n{k}", "H100", 10) for k in range(shape.gpus_per_site // 10))
            reports = [RunReport(r, RunState.RUNNING) for r in agent.running]
            agent.session = await controller.attach(power.site_id, REGIONS[i % 3], nodes, reports, power)

        heartbeat_s: list[float] = []
        schedule_s: list[float] = []
        dispatch_s: list[float] = []
        pass_s: list[float] = []
        orders_taken = 0

        async def one_second(record: tuple[list, list, list, list] | None, pass_profile: str) -> None:
            nonlocal orders_taken
            clock.now += 1.0
            for sid, agent in agents.items():
                orders_taken += agent.take_orders()
                reports, reading = agent.heartbeat()

                async def beat(sid=sid, reports=reports, reading=reading):
                    await controller.on_run_reports(sid, reports)
                    await controller.on_reading(sid, reading)

                spent = await timed(beat, profiles.profiler("heartbeat"))
                if record is not None:
                    record[0].append(spent)
            sched = await timed(controller.schedule_once, profiles.profiler(f"{pass_profile}: schedule_once"))
            disp = await timed(lambda: controller.dispatch_power(sweep=True), profiles.profiler(f"{pass_profile}: dispatch_power(sweep=True)"))
            if record is not None:
                record[1].append(sched)
                record[2].append(disp)
                record[3].append(sched + disp)

        # Warm up: mining targets go out and are confirmed, pending reasons are written once.
        for _ in range(3):
            await one_second(None, "warm-up")
        profiles.by_name.clear()
        steady = (heartbeat_s, schedule_s, dispatch_s, pass_s)
        for _ in range(seconds):
            await one_second(steady, "pass")
        for agent in agents.values():
            orders_taken += agent.take_orders()

        # The cap event: 10 sites at once, each cut below its AI load at full power with mining paused.
        events = []
        for power in powers[:CAP_SITES]:
            on_site = controller.jobs.on_site(power.site_id)
            run_w = sum(j.total_gpus for j in on_site) * (GPU_LOAD_W - GPU_IDLE_W) * OVERHEAD
            floor_w = (power.gpus * GPU_IDLE_W + power.mining_floor_w) * OVERHEAD
            events.append(
                GridEvent(
                    f"cut-{power.site_id}",
                    GridEventKind.CAP_LIMIT,
                    start=clock.now,
                    end=clock.now + 3600,
                    site_id=power.site_id,
                    cap_w=floor_w + 0.6 * run_w,
                    reason="bench",
                )
            )
        profile = profiles.profiler("cap event: 10 x post_grid_event")
        if profile is not None:
            profile.enable()
        targets_at: dict[str, float] = {}  # site -> when its mining targets were queued (they leave before the commit)

        def timing(session, send):
            def send_and_time(order):
                if isinstance(order, SetMiningTargets):
                    targets_at.setdefault(session.site_id, time.perf_counter())
                send(order)

            return send_and_time

        for event in events:
            session = agents[event.site_id].session
            session.send = timing(session, session.send)
        started = time.perf_counter()
        await asyncio.gather(*(controller.post_grid_event(e) for e in events))
        cap_event_s = time.perf_counter() - started
        cap_targets_s = max(targets_at.values()) - started if len(targets_at) == len(events) else float("nan")
        cap_commit_s = sum(spent for at, spent in commits if at >= started)
        if profile is not None:
            profile.disable()
        kinds: dict[str, int] = {}
        for event in events:  # the outboxes are read, not taken: the agents take them next second
            for order in agents[event.site_id].session.outbox._queue:
                kinds[type(order).__name__] = kinds.get(type(order).__name__, 0) + 1
        preempted = sum(1 for e in events for j in controller.jobs.on_site(e.site_id) if j.state == JobState.PREEMPTED)
        capped = sum(1 for e in events for j in controller.jobs.on_site(e.site_id) if j.power_fraction < 1.0)

        after = ([], [], [], [])
        for _ in range(after_cap_seconds):
            await one_second(after, "after the cap event")

        states: dict[str, int] = {}
        for job in controller.jobs.values():
            states[job.state.name] = states.get(job.state.name, 0) + 1
        active = sum(
            n for s, n in states.items() if JobState[s] in (JobState.SCHEDULED, JobState.STARTING, JobState.RUNNING, JobState.CANCELLING, JobState.PREEMPTED)
        )
        total_beats_s = sum(heartbeat_s)
        return {
            "sites": shape.sites,
            "miners": sum(f.count for p in powers for f in p.fleets),
            "fleets": sum(len(p.fleets) for p in powers),
            "gpus": shape.sites * shape.gpus_per_site,
            "active_jobs": shape.active_jobs,
            "pending_jobs": shape.pending_jobs,
            "seconds": seconds,
            "pass_p50_ms": ms(pct(pass_s, 50)),
            "pass_p99_ms": ms(pct(pass_s, 99)),
            "pass_max_ms": ms(max(pass_s)),
            "schedule_p50_ms": ms(pct(schedule_s, 50)),
            "schedule_p99_ms": ms(pct(schedule_s, 99)),
            "dispatch_p50_ms": ms(pct(dispatch_s, 50)),
            "dispatch_p99_ms": ms(pct(dispatch_s, 99)),
            "heartbeat_p50_ms": ms(pct(heartbeat_s, 50)),
            "heartbeat_p99_ms": ms(pct(heartbeat_s, 99)),
            "heartbeats_per_s": round(len(heartbeat_s) / total_beats_s, 1),
            "heartbeat_reports_each": shape.active_jobs // shape.sites,
            "heartbeat_load_share": round(total_beats_s / seconds, 3),  # of each simulated second, at 1 Hz per site
            "cap_event_sites": CAP_SITES,
            "cap_event_orders_ms": ms(cap_event_s),
            "cap_event_targets_ms": ms(cap_targets_s),  # until every cut site's mining targets are queued (before the commit)
            "cap_event_commit_ms": ms(cap_commit_s),  # of cap_event_orders_ms: the store's transaction(s), in its thread
            "cap_event_orders": sum(kinds.values()),
            "cap_event_order_kinds": kinds,
            "cap_event_preempted": preempted,
            "cap_event_power_capped": capped,
            "after_cap_pass_p50_ms": ms(pct(after[3], 50)),
            "after_cap_pass_p99_ms": ms(pct(after[3], 99)),
            "after_cap_heartbeat_p99_ms": ms(pct(after[0], 99)),
            "orders_taken": orders_taken,
            "job_states_at_end": states,
            "active_at_end": active,
            "store_batches": controller.committer.batches,
            "background_loops": "running" if with_loops else "off (the script drives each pass)",
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        await controller.stop()
        store.close()


def small_rss(seconds: int) -> dict:
    """The small configuration in a fresh process (ru_maxrss is a per-process peak)."""
    out = subprocess.run(
        [sys.executable, __file__, "--shape", "small", "--seconds", str(seconds), "--after-cap-seconds", "3", "--no-small"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds measured (one pass and a heartbeat per site each)")
    parser.add_argument("--after-cap-seconds", type=int, default=10)
    parser.add_argument("--shape", choices=("large", "small"), default="large")
    parser.add_argument("--with-loops", action="store_true", help="leave the controller's background loops running")
    parser.add_argument("--profile", action="store_true", help="cProfile the passes and the cap event (stderr)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-small", action="store_true", help="skip the small configuration")
    args = parser.parse_args()
    # The controller's log lines are formatted as in production (INFO) and thrown away.
    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler(open(os.devnull, "w"))])  # noqa: SIM115
    shape = LARGE if args.shape == "large" else SMALL
    profiles = Profiles(args.profile)
    # The small run first: Linux carries a parent's peak RSS at the fork into the child's
    # ru_maxrss, so a child started after the large run would report the large run's peak.
    small = small_rss(min(args.seconds, 10)) if not args.no_small and shape == LARGE else None
    with tempfile.TemporaryDirectory(prefix="pp-scale-") as db_dir:
        result = asyncio.run(run(shape, args.seconds, args.after_cap_seconds, args.with_loops, profiles, db_dir))
    if small is not None:
        result["rss_mb_small"] = small["rss_mb"]
        result["small"] = {k: small[k] for k in ("active_jobs", "pending_jobs", "gpus", "pass_p99_ms", "cap_event_orders_ms")}
        per_job_kb = (result["rss_mb"] - small["rss_mb"]) * 1024 / max(1, shape.active_jobs - SMALL.active_jobs)
        result["rss_kb_per_active_job"] = round(per_job_kb, 2)
    result["goal"] = {
        "pass_p99_ms": GOAL_PASS_P99_MS,
        "cap_event_orders_ms": GOAL_CAP_EVENT_MS,
        "pass_met": result["pass_p99_ms"] < GOAL_PASS_P99_MS,
        "cap_event_met": result["cap_event_orders_ms"] < GOAL_CAP_EVENT_MS,
    }
    result["python"] = sys.version.split()[0]
    if args.profile:
        sys.stderr.write(profiles.report(args.top))
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
