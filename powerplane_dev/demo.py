"""`powerplane demo`: the whole system on one machine, shown live.

A local Ray cluster with two sites (us-tx-1 in region us, eu-no-1 in region eu,
8 virtual GPUs each, each with a grid cap and a few hundred emulated Braiins OS
miners driven through pyasic_rs by Ray actors), the scheduler
on SQLite, one agent per site, and two tenants: acme trains the example PyTorch
model with Ray Train (examples/training), globex serves inference. eu-no-1 starts
drained (maintenance), so training starts on us-tx-1; then it comes back. Mining fills
each site's cap; the AI jobs get their power by curtailing it first. While training
runs, the operator posts a grid cap cut on us-tx-1: mining drops to its floor and
training is power-capped (through the agent's NVML, a fake device here) within the
slowdown it tolerates. A deeper cut follows: training is asked to checkpoint, stopped,
requeued with the work it lost recorded, and resumes on eu-no-1 from its checkpoint.
Events and training progress stream until the training job finishes; then the
inference service is cancelled and everything is stopped. Exit code 0 only if
training succeeded after resuming from a checkpoint.
"""

from __future__ import annotations

import dataclasses
import queue
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc

from powerplane_dev.cluster import LocalCluster, SitePowerSpec, SiteSpec, can_host_miners, emulated_fleet
from scheduler.api.convert import timestamp
from scheduler.api.v1 import operator_pb2, types_pb2
from scheduler.cli import grid_commands, operator_commands, render
from scheduler.client import Client, spec
from scheduler.core.power import MINER_MODELS, Cooling, watts_text

REPO = Path(__file__).resolve().parents[1]  # the repository (examples/): the demo runs from a checkout
TRAIN_STEPS, CHECKPOINT_EVERY = 400, 40
# Emulated Braiins OS miners (agents/emulator) on loopback addresses, in racks of 100 that
# run as Ray actors and drive their miners through pyasic_rs. Ramps are shortened for the demo.
TX_POWER = SitePowerSpec(
    interconnect_cap_mw=0.95,
    cooling="air",
    market_node="HB_WEST",
    fleets=(
        emulated_fleet("tx-s19xp", "S19XP", 150, "127.50.0.1", group_size=100, ramp_down_s=3, ramp_up_s=3),
        emulated_fleet("tx-s21", "S21", 150, "127.50.1.1", group_size=100, ramp_down_s=3, ramp_up_s=3),
    ),
)
NO_POWER = SitePowerSpec(
    interconnect_cap_mw=0.75,
    cooling="hydro",
    market_node="NO1",
    fleets=(emulated_fleet("no-s21", "S21", 200, "127.51.0.1", group_size=100, ramp_down_s=3, ramp_up_s=3),),
)
SITES = [SiteSpec("us-tx-1", "us", gpus=8, cpus=2, power=TX_POWER), SiteSpec("eu-no-1", "eu", gpus=8, cpus=2, power=NO_POWER)]
DEMO_SCHEDULER = {"mining": {"min_on_s": 0, "min_off_s": 0}, "cap_lead_s": 2.0, "power_interval_s": 0.5, "serve_cooldown_s": 10}
CHAT = types_pb2.ServeSpec(import_path="examples.inference.service:app", min_replicas=1, max_replicas=3, target_rps_per_replica=5.0)
# Demand replayed at the chat service (Azure LLM conversation trace, time-compressed): quiet, busy, quiet.
DEMAND_PHASES = ((20, 2.0), (45, 13.0), (120, 2.0))  # (seconds, mean requests/s)
CUT_AHEAD_S, CUT_LENGTH_S = 6.0, 60.0  # the first cut: training power-capped
DEEP_CUT_AHEAD_S = 20.0  # the second: training preempted, with time to checkpoint first
READINGS_WAIT_S = 30.0  # for the first sites table: every site's meter reading from miners that were read


def _say(text: str) -> None:
    print(text, flush=True)


def _follow(client: Client, tenant: str, out: queue.Queue, streams: list) -> None:
    stream = client.watch(0)
    streams.append(stream)
    try:
        for event in stream:
            out.put((tenant, event))
    except grpc.RpcError:
        pass  # cancelled at the end of the demo


def _fresh_workdir(workdir: Path) -> None:
    for name in ("powerplane.db", "powerplane.db-wal", "powerplane.db-shm", "logs"):
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    workdir.mkdir(parents=True, exist_ok=True)


def run_demo(workdir: Path, timeout_s: float) -> int:
    workdir = workdir.resolve()
    try:
        demand = _chat_demand()
    except (FileNotFoundError, ValueError) as err:  # a $POWERPLANE_DATA_DIR without the Azure trace
        _say(f"demo: cannot replay chat demand: {err}")
        return 2
    _fresh_workdir(workdir)
    sites = SITES
    if not can_host_miners():
        _say("note: emulated miners listen on port 80 like real ones, which needs root; without it the agents emulate their fleets themselves")
        sites = [dataclasses.replace(s, power=s.power.emulated_in_agent()) for s in SITES]
    cluster = LocalCluster(workdir, sites, site_timeout_s=15.0, heartbeat_interval_s=1.0, scheduler_settings=DEMO_SCHEDULER)
    streams: list = []
    started = time.monotonic()
    try:
        _say(f"[1/5] starting a local Ray cluster: one node per site, {sum(s.gpus for s in SITES)} virtual GPUs (logs in {workdir / 'logs'})")
        cluster.start_ray()
        _say(f"[2/5] starting the scheduler on {cluster.scheduler_target} (SQLite at {workdir / 'powerplane.db'})")
        cluster.start_scheduler()
        # The operator's token goes in the URL's fragment: the browser keeps it (the page sends it as a header), never the server's logs.
        _say(f"      live dashboard: http://127.0.0.1:{cluster.dashboard_port}/#token={cluster.operator_token}  (a browser on this machine, in the same network namespace)")
        miners = sum(f.count for s in sites for f in s.power.fleets if f.emulator_base)
        if miners:
            _say(f"[3/5] starting {miners} emulated miners (Braiins OS on 127.50-51.x.y) and the site agents: us-tx-1 (region us), eu-no-1 (region eu)")
        else:
            _say("[3/5] starting the site agents (fleets emulated in the agents): us-tx-1 (region us), eu-no-1 (region eu)")
        cluster.start_miner_emulators()
        cluster.start_agents()
        ops = Client(cluster.scheduler_target, cluster.operator_token)
        acme = Client(cluster.scheduler_target, cluster.tenant_token("acme"))
        globex = Client(cluster.scheduler_target, cluster.tenant_token("globex"))
        cluster.wait_sites_ready(ops)
        _say(operator_commands.sites_table(_sites_once_metered(ops, time.monotonic() + READINGS_WAIT_S)))

        _say("[4/5] eu-no-1 is in maintenance (drained); acme trains the example model with Ray Train (4 GPUs, us or eu)")
        python = sys.executable
        ops.drain("eu-no-1", "maintenance (demo)")
        train = (
            f"{python} {REPO / 'examples' / 'training' / 'train_regression.py'} --steps {TRAIN_STEPS} --checkpoint-every {CHECKPOINT_EVERY} --step-sleep-s 0.1"
        )
        training = acme.submit(
            spec(train, gpus=4, allowed_regions=["us", "eu"], name="regression-demo", max_runtime_s=int(timeout_s), slowdown_tolerance_pct=25),
            f"demo-train-{uuid.uuid4().hex[:8]}",
        ).job
        _drain_until_running(acme, training.job_id, time.monotonic() + 180)
        ops.undrain("eu-no-1")
        _say("  ops     eu-no-1 is back from maintenance; globex serves a chat model there on Ray Serve (1-3 replicas x 1 GPU, eu only)")
        inference = globex.submit(
            spec(f"serve {CHAT.import_path}", gpus=1, kind=types_pb2.JOB_KIND_INFERENCE, allowed_regions=["eu"], name="chat-demo", serve=CHAT),
            f"demo-serve-{uuid.uuid4().hex[:8]}",
        ).job
        events: queue.Queue = queue.Queue()
        for tenant, client in (("acme", acme), ("globex", globex)):
            threading.Thread(target=_follow, args=(client, tenant, events, streams), daemon=True).start()

        _say("[5/5] live events (until the training job ends):")
        chat = _Chat(globex, inference.job_id, demand)
        try:
            outcome = _show_until_done(events, ops, acme, training.job_id, chat, deadline=time.monotonic() + timeout_s)
        finally:
            chat.stop()
        _say(f"\ncancelling the inference service {inference.job_id}")
        globex.cancel(inference.job_id, "demo finished")
        _drain_until(events, inference.job_id, types_pb2.JOB_STATE_CANCELLED, time.monotonic() + 30)

        _say("\ngrid events and how each was met:\n" + grid_commands.events_table(list(ops.grid_events().events), with_response=True))
        _say("\nacme's jobs:\n" + render.jobs_table(list(acme.list_all())))
        _say("\nglobex's jobs:\n" + render.jobs_table(list(globex.list_all())))
        _say("\nsites:\n" + operator_commands.sites_table(ops.sites().sites))
        _say(f"\nglobex's chat service scaled with demand: replicas over time {chat.replicas_seen}")
        final = acme.get(training.job_id)
        _say("\nacme's training job:\n" + render.job_detail(final))
        if outcome == types_pb2.JOB_STATE_SUCCEEDED and final.preemptions >= 1 and final.checkpoint.checkpoint_step == TRAIN_STEPS:
            _say(
                f"\ndemo finished in {time.monotonic() - started:.0f}s: training SUCCEEDED on {final.site_id} after {final.preemptions} preemption(s), all {TRAIN_STEPS} steps"
            )
            return 0
        _say(f"\ndemo failed: training ended {render.state_name(outcome) if outcome else 'in no final state before the timeout'}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        for stream in streams:
            stream.cancel()
        _say("stopping agents, scheduler and Ray ...")
        cluster.stop()


def _post_cap_cut(ops: Client, deep: bool = False) -> None:
    """A cap cut on us-tx-1 a little under what its AI and paused miners draw (power-caps
    training); `deep`: below the idle GPUs and paused miners plus 1 kW (preempts it)."""
    floor_w = sum(f.count * MINER_MODELS[f.model].standby_w for f in TX_POWER.fleets)  # every miner paused
    it_w = 8 * TX_POWER.gpu_idle_w + 4 * (TX_POWER.gpu_load_w - TX_POWER.gpu_idle_w) + floor_w  # idle GPUs + the training run at load
    cap_w = it_w * Cooling.AIR.default_overhead - 500
    ahead, length = CUT_AHEAD_S, CUT_LENGTH_S
    if deep:
        cap_w = (8 * TX_POWER.gpu_idle_w + floor_w) * Cooling.AIR.default_overhead + 1000
        ahead, length = DEEP_CUT_AHEAD_S, CUT_LENGTH_S - DEEP_CUT_AHEAD_S
    start = time.time() + ahead
    event = operator_pb2.GridEvent(
        event_id=f"demo-{'deep-' if deep else ''}cut-{uuid.uuid4().hex[:6]}",
        kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
        site_id="us-tx-1",
        cap_w=cap_w,
        start=timestamp(start),
        end=timestamp(start + length),
        reason="ERCOT emergency: deeper cut (demo)" if deep else "ERCOT 4CP peak (demo)",
    )
    ops.post_grid_event(event)
    _say(f"  ops     grid event: cap us-tx-1 at {watts_text(cap_w)} from +{ahead:g}s for {length:g}s ({event.reason})")


def _power_line(ops: Client) -> str:
    parts = []
    for s in ops.sites().sites:
        p = s.power
        parts.append(
            f"{s.site_id} {s.gpus_free}/{s.gpus_total} GPUs free, meter {watts_text(p.measured_w)} of {watts_text(p.cap_w)} "
            f"(AI {watts_text(p.ai_w)}, mining {watts_text(p.mining_w)})"
        )
    return "  |  ".join(parts)


def _training_line(job: types_pb2.Job) -> str:
    ck = job.checkpoint
    return f"acme training on {job.site_id or '-'}: step {ck.step}/{TRAIN_STEPS}, last checkpoint step {ck.checkpoint_step}, GPU power cap {job.power_fraction:.0%}"


def _sites_once_metered(ops: Client, deadline: float) -> list:
    """The sites once each power-managed one has a meter reading at or under its cap in
    force: until its agent has read its miners, it counts the unread ones at their rated
    power (agents/miners/driver.py), which here is over the cap. Past `deadline`, the
    sites as they are, with a note saying what their meter figure means."""
    while True:
        sites = list(ops.sites().sites)
        pending = [s.site_id for s in sites if s.HasField("power") and s.power.cap_w > 0 and not 0 < s.power.measured_w <= s.power.cap_w]
        if not pending:
            return sites
        if time.monotonic() >= deadline:
            _say(
                f"  note: no meter reading under the cap yet from {', '.join(pending)} after {READINGS_WAIT_S:g}s: "
                "its METER MW still counts the miners its agent has not read yet at their rated power"
            )
            return sites
        time.sleep(0.5)


def _chat_demand() -> list:
    """The chat demand of DEMAND_PHASES: consecutive slices of the Azure conversation trace
    (the data folder of scheduler/sim/data.py: ../shared/data, else the sample in the
    package), each time-compressed to its phase's rate."""
    if str(REPO) not in sys.path:  # examples/ is not an installed package: the demo runs from the repository
        sys.path.insert(0, str(REPO))
    from examples.inference.load import azure_arrivals

    arrivals, offset, skip = [], 0.0, 0
    for seconds, rps in DEMAND_PHASES:
        count = int(seconds * rps)
        phase = azure_arrivals(skip=skip, count=count, mean_rps=rps)
        arrivals += [dataclasses.replace(a, at_s=a.at_s + offset) for a in phase]
        offset += seconds
        skip += count
    return arrivals


class _Chat:
    """Replays `demand` at globex's chat service once it answers, and says how it scales."""

    def __init__(self, client: Client, job_id: str, demand: list):
        self.client, self.job_id, self.demand, self.load = client, job_id, demand, None
        self.replicas_seen: list[int] = []

    def line(self) -> str:
        job = self.client.get(self.job_id)
        if self.load is None and job.endpoint and job.state == types_pb2.JOB_STATE_RUNNING:
            from examples.inference.load import Load

            self.load = Load(job.endpoint, self.demand).start()
            _say(f"  globex  replaying chat demand at {job.endpoint}: " + ", ".join(f"{rps:g} req/s for {s}s" for s, rps in DEMAND_PHASES))
        if job.replicas and (not self.replicas_seen or self.replicas_seen[-1] != job.replicas):
            self.replicas_seen.append(job.replicas)
        answered = [r for r in (self.load.results if self.load else []) if r.ok]
        recent = sorted(r.latency_ms for r in answered[-200:])
        p50 = f", p50 {recent[len(recent) // 2]:.0f} ms" if recent else ""
        return f"globex chat on {job.site_id or '-'}: {job.replicas} replica(s), demand {job.requests_per_s:.1f} req/s, {len(answered)} answered{p50}"

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()


def _show_until_done(events: queue.Queue, ops: Client, acme: Client, job_id: str, chat: _Chat, deadline: float) -> int | None:
    """Stream events, power and training progress; post the cuts as training gets going."""
    next_sites = time.monotonic() + 3
    cut_posted = deep_posted = False
    while time.monotonic() < deadline:
        try:
            tenant, event = events.get(timeout=0.5)
        except queue.Empty:
            tenant = None
        if tenant is not None:
            _say(f"  {tenant:<7} {render.event_line(event)}")
            if event.job_id == job_id and event.to_state in (types_pb2.JOB_STATE_SUCCEEDED, types_pb2.JOB_STATE_FAILED, types_pb2.JOB_STATE_CANCELLED):
                return event.to_state
        if time.monotonic() >= next_sites:
            job = acme.get(job_id)
            if not cut_posted and job.state == types_pb2.JOB_STATE_RUNNING and job.checkpoint.checkpoint_step >= CHECKPOINT_EVERY:
                _post_cap_cut(ops)
                cut_posted = True
            elif cut_posted and not deep_posted and job.power_fraction < 1.0:
                _post_cap_cut(ops, deep=True)
                deep_posted = True
            _say(f"  power: {_power_line(ops)}")
            _say(f"  {_training_line(job)}")
            _say(f"  {chat.line()}")
            next_sites = time.monotonic() + 3
    return None


def _drain_until_running(client: Client, job_id: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        job = client.get(job_id)
        if job.state == types_pb2.JOB_STATE_RUNNING:
            _say(f"  acme    {job_id} RUNNING on {job.site_id}")
            return
        time.sleep(0.5)
    raise TimeoutError(f"training job {job_id} did not start in time")


def _drain_until(events: queue.Queue, job_id: str, state: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            tenant, event = events.get(timeout=0.5)
        except queue.Empty:
            continue
        _say(f"  {tenant:<7} {render.event_line(event)}")
        if event.job_id == job_id and event.to_state == state:
            return
