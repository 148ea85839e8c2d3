"""One event sequence, replayed through the real controller (real SQLite, in-process agent
sessions, a fake clock) and through the simulator's scheduler side: the decisions
(every order sent to each site, every job transition with its reason) must be the same.

The agents are scripted the same way on both sides: a site reports its fleets at the
targets it was sent last, a started run RUNNING, a stopped run STOPPED, a Serve service
at its ordered size with a scripted demand, a training run done after a set number of
steps. Job and run ids differ (the controller draws them at random): they are renamed by
the client request id before comparing. The scenario covers placement on two sites,
making room, a Serve scale-up, a cap cut met mining first, then by a training power cap
and a preemption with requeue, and an emergency.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

from scheduler.core.decisions import Order, ScaleRun, SetMiningTargets, StartRun, StopRun
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobKind, JobSpec, Resources
from scheduler.core.power_state import PowerReading
from scheduler.core.runs import RunReport, RunState, ServeLoad
from scheduler.core.sites import GpuNode
from scheduler.server.config import SchedulerConfig
from scheduler.server.controller import Controller, power_settings
from scheduler.sim.scenario import ScenarioSite
from scheduler.sim.scheduler_side import SimScheduler
from scheduler.store.sqlite import SqliteStore
from tests.builders import NOW, a_site_power

STEP_S = 10.0
STEPS = 24
TENANT = "acme"
SITES = (
    ScenarioSite(a_site_power("tx-1").cap_mw(4).with_miners("S19XP", 400, "s19").with_miners("S21", 400).with_gpus(16).build(), "us", ""),
    ScenarioSite(a_site_power("tx-2").cap_mw(2.5).overhead(1.04).with_miners("A2", 500).with_gpus(8).build(), "us", ""),
)


def training(gpus: int, tolerance: int = 0, steps: int = 1000) -> JobSpec:
    return JobSpec(JobKind.TRAINING, f"python train.py --steps {steps}", Resources(gpus=gpus), allowed_regions=("us",), slowdown_tolerance_pct=tolerance)


SERVICE = JobSpec(
    JobKind.INFERENCE,
    "serve app",
    Resources(gpus=2),
    allowed_regions=("us",),
    serve_import_path="examples.inference.service:app",
    min_replicas=1,
    max_replicas=3,
    target_rps_per_replica=10.0,
)
SUBMISSIONS = {0: [("big", training(12, tolerance=25)), ("svc", SERVICE)], 1: [("small", training(4, steps=8))], 12: [("late", training(6))]}
FLOOR_TX1 = (16 * 150 + SITES[0].power.mining_floor_w) * 1.1  # GPUs idle, mining paused
# cut-1 leaves the service (2 replicas, 4 GPUs) and the big run at 90 % of its load power; cut-2 the service only
GRID = {
    6: GridEvent("cut-1", GridEventKind.CAP_LIMIT, start=NOW + 6 * STEP_S, end=NOW + 20 * STEP_S, site_id="tx-1", cap_w=FLOOR_TX1 + (4 + 12 * 0.9) * 850 * 1.1),
    9: GridEvent("cut-2", GridEventKind.CAP_LIMIT, start=NOW + 9 * STEP_S, end=NOW + 20 * STEP_S, site_id="tx-1", cap_w=FLOOR_TX1 + 4 * 850 * 1.1),
    15: GridEvent("eea-1", GridEventKind.EMERGENCY, start=NOW + 15 * STEP_S, end=NOW + 18 * STEP_S, site_id="tx-2", reason="EEA2"),
}
DEMAND = {3: 25.0, 14: 5.0}  # the service's requests/s from this step on


def settings_config() -> SchedulerConfig:
    return SchedulerConfig(
        regions=["us"],
        sites={s.site_id: "s" * 16 for s in SITES},
        schedule_interval_s=3600,
        power_interval_s=3600,
        site_timeout_s=7200,
        heartbeat_interval_s=5,
        serve_cooldown_s=30,
    )


class ScriptedAgent:
    """A site's agent, the same on both sides: it carries out orders and reports what it did."""

    def __init__(self, site: ScenarioSite):
        self.site = site
        self.targets = {f.fleet_id: f.max_w for f in site.power.fleets}
        self.runs: dict[str, list] = {}  # run_id -> [state, steps left, replicas]
        self.ended: list[RunReport] = []
        self.demand = 0.0

    def carry_out(self, orders: list[Order]) -> None:
        for order in orders:
            match order:
                case SetMiningTargets():
                    self.targets = dict(order.targets_w)
                case StartRun():
                    steps = int(order.spec.entrypoint.rsplit(" ", 1)[1]) if "--steps" in order.spec.entrypoint else 10_000
                    self.runs[order.run_id] = [RunState.RUNNING, steps, order.spec.replica_bounds[0]]
                case StopRun():
                    if self.runs.pop(order.run_id, None) is not None:
                        self.ended.append(RunReport(order.run_id, RunState.STOPPED))
                case ScaleRun():
                    if order.run_id in self.runs:
                        self.runs[order.run_id][2] = order.replicas

    def report(self) -> tuple[list[RunReport], PowerReading]:
        reports, self.ended = self.ended, []
        for run_id, run in list(self.runs.items()):
            run[1] -= 1
            if run[1] <= 0:
                del self.runs[run_id]
                reports.append(RunReport(run_id, RunState.SUCCEEDED))
                continue
            serve = ServeLoad(self.demand, run[2], "http://127.0.0.1:8000/svc") if run_id.startswith(self.service_prefix) else None
            reports.append(RunReport(run_id, RunState.RUNNING, serve=serve))
        fleets = {f: (w, w) for f, w in self.targets.items()}
        active = frozenset(r.run_id for r in reports if r.state == RunState.RUNNING)
        return reports, PowerReading(fleets, it_w=sum(self.targets.values()), gpu_w=0.0, meter_w=sum(self.targets.values()) * self.site.power.overhead, active_runs=active)

    service_prefix = "\0"  # the service's job id, once known on this side


def normalise(text: str, names: dict[str, str]) -> str:
    return re.sub(r"job-[0-9a-f]{16}", lambda m: names.get(m.group(0), m.group(0)), text)


def order_line(order: Order, names: dict[str, str]) -> str:
    fields = dataclasses.asdict(order)
    fields.pop("spec", None)
    fields = {k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}
    if "targets_w" in fields:
        fields["targets_w"] = {k: round(v, 3) for k, v in sorted(fields["targets_w"].items())}
    return normalise(f"{type(order).__name__} {fields}", names)


def replay_through_controller(tmp_path) -> list[str]:
    async def main() -> list[str]:
        clock = [NOW]
        controller = Controller(SqliteStore(tmp_path / "replay.db"), settings_config(), lambda: clock[0])
        await controller.start(loops=False)
        watcher = controller.watch(TENANT, "")
        names: dict[str, str] = {}
        agents = {s.site_id: ScriptedAgent(s) for s in SITES}
        sessions = {s.site_id: await controller.attach(s.site_id, s.region, (GpuNode("n1", "H100", s.power.gpus),), [], s.power) for s in SITES}
        lines = []
        try:
            for step in range(STEPS):
                clock[0] = NOW + step * STEP_S
                for site_id, agent in agents.items():
                    agent.demand = next((rps for at, rps in sorted(DEMAND.items(), reverse=True) if step >= at), 0.0)
                    reports, reading = agent.report()
                    await controller.on_run_reports(site_id, reports)
                    await controller.on_reading(site_id, reading)
                for name, spec in SUBMISSIONS.get(step, []):
                    job, _ = await controller.submit(TENANT, name, spec)
                    names[job.job_id] = name
                    if name == "svc":
                        for agent in agents.values():
                            agent.service_prefix = job.job_id
                if step in GRID:
                    await controller.post_grid_event(GRID[step])
                await controller.schedule_once()
                await controller.dispatch_power(sweep=True)
                await controller.scale_services()
                await controller.check_liveness()
                for site_id, session in sessions.items():
                    orders = []
                    while not session.outbox.empty():
                        orders.append(session.outbox.get_nowait())
                    agents[site_id].carry_out(orders)
                    lines += [f"{step} {site_id} {order_line(o, names)}" for o in orders]
                while not watcher.queue.empty():
                    e = watcher.queue.get_nowait()
                    lines.append(normalise(f"{step} event {e.job_id} {e.from_state and e.from_state.name} -> {e.to_state.name}: {e.reason}", names))
        finally:
            await controller.stop()
        return lines

    return asyncio.run(main())


def replay_through_simulator() -> list[str]:
    lines = []
    step_box = [0]

    def on_event(job, e):
        lines.append(f"{step_box[0]} event {e.job_id} {e.from_state and e.from_state.name} -> {e.to_state.name}: {e.reason}")

    sim = SimScheduler(power_settings(settings_config()), SITES, NOW, on_event)
    agents = {s.site_id: ScriptedAgent(s) for s in SITES}
    for agent in agents.values():
        agent.service_prefix = "svc"
    for site_id, agent in agents.items():  # the attach's orders (none: dispatch has not run)
        agent.carry_out(sim.take_orders(site_id))
    for step in range(STEPS):
        step_box[0] = step
        now = NOW + step * STEP_S
        for site_id, agent in agents.items():
            agent.demand = next((rps for at, rps in sorted(DEMAND.items(), reverse=True) if step >= at), 0.0)
            reports, reading = agent.report()
            sim.on_run_reports(site_id, reports, now)
            sim.on_reading(site_id, reading, now)
        for name, spec in SUBMISSIONS.get(step, []):
            sim.submit(name, TENANT, spec, now)
        if step in GRID:
            sim.post_grid_event(GRID[step], now)
        sim.schedule(now)
        sim.dispatch(now)
        sim.scale(now)
        sim.check_time(now)
        for site_id, agent in agents.items():
            orders = sim.take_orders(site_id)
            agent.carry_out(orders)
            lines += [f"{step} {site_id} {order_line(o, {})}" for o in orders]
    return lines


def by_step(lines: list[str]) -> dict[int, list[str]]:
    """Per step, orders and transitions each in order (the two kinds interleave differently:
    the controller publishes events after its commit, the simulator as it applies)."""
    steps: dict[int, list[str]] = {}
    for line in lines:
        step, rest = line.split(" ", 1)
        steps.setdefault(int(step), []).append(rest)
    return {k: sorted(v, key=lambda x: x.startswith("event")) for k, v in steps.items()}


def test_the_scheduler_and_the_simulator_make_the_same_decisions(tmp_path):
    real = replay_through_controller(tmp_path)
    simulated = replay_through_simulator()
    assert by_step(real) == by_step(simulated)
    text = "\n".join(real)
    # The scenario exercises every kind of decision (the comparison is not vacuous).
    for needle in ("StartRun", "StopRun", "SetMiningTargets", "CapRunPower", "ScaleRun", "-> PREEMPTED", "PREEMPTED -> PENDING", "-> SUCCEEDED", "emergency"):
        assert needle in text, f"the replay never produced {needle!r}:\n{text}"
