"""`powerplane demo`: the whole system on one machine, shown live.

A local Ray cluster with two sites (us-tx-1 in region us, eu-no-1 in region eu,
8 virtual GPUs each, each with a grid cap and a few hundred emulated Braiins OS
miners driven through pyasic_rs by Ray actors), the scheduler
on SQLite, one agent per site, and two tenants: acme trains a small model in the
us, globex serves inference in the eu. Mining fills each site's cap; the AI jobs
get their power by curtailing it first. While training runs, the operator posts a
grid cap cut on us-tx-1: mining drops to its floor and the training run is
power-capped within the slowdown it tolerates, then everything returns when the
cut ends. Events stream as they happen until the training job finishes; then the
inference service is cancelled and everything is stopped. Exit code 0 only if
training succeeded.
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

from scheduler.api.convert import timestamp
from scheduler.api.v1 import operator_pb2, types_pb2
from scheduler.cli import grid_commands, operator_commands, render
from scheduler.client import Client, spec
from scheduler.core.power import MINER_MODELS, Cooling, watts_text
from scheduler.devcluster import LocalCluster, SitePowerSpec, SiteSpec, can_host_miners, emulated_fleet

TRAIN_SCRIPT = '''\
"""Demo training job: fits y = 3x + 1 by SGD, one line per epoch, with a checkpoint file."""
import json, os, random, sys, time
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 8
random.seed(0)
data = [(x, 3 * x + 1 + random.gauss(0, 0.1)) for x in [random.uniform(-1, 1) for _ in range(400)]]
w = b = 0.0
for epoch in range(1, epochs + 1):
    for x, y in data:
        err = w * x + b - y
        w -= 0.002 * err * x
        b -= 0.002 * err
    loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
    print(f"epoch {epoch}/{epochs} loss={loss:.4f} w={w:.3f} b={b:.3f}", flush=True)
    time.sleep(1.0)
print(json.dumps({"w": w, "b": b, "run": os.environ.get("POWERPLANE_RUN_ID")}))
'''
SERVE_SCRIPT = '''\
"""Demo inference service: answers a synthetic request stream until stopped."""
import time
served = 0
while True:
    served += 50
    print(f"served {served} requests", flush=True)
    time.sleep(1.0)
'''
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
DEMO_SCHEDULER = {"mining": {"min_on_s": 0, "min_off_s": 0}, "cap_lead_s": 2.0, "power_interval_s": 0.5}
CUT_AHEAD_S, CUT_LENGTH_S = 6.0, 15.0


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
    _fresh_workdir(workdir)
    (workdir / "train.py").write_text(TRAIN_SCRIPT)
    (workdir / "serve.py").write_text(SERVE_SCRIPT)
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
        _say(operator_commands.sites_table(ops.sites().sites))

        _say("[4/5] tenants submit: acme trains (4 GPUs, us only), globex serves inference (2 replicas x 2 GPUs, eu only)")
        python = sys.executable
        training = acme.submit(
            spec(
                f"{python} {workdir / 'train.py'} 20",
                gpus=4,
                allowed_regions=["us"],
                name="sgd-demo",
                max_runtime_s=int(timeout_s),
                slowdown_tolerance_pct=25,
            ),
            f"demo-train-{uuid.uuid4().hex[:8]}",
        ).job
        inference = globex.submit(
            spec(f"{python} {workdir / 'serve.py'}", gpus=2, kind=types_pb2.JOB_KIND_INFERENCE, replicas=2, allowed_regions=["eu"], name="chat-demo"),
            f"demo-serve-{uuid.uuid4().hex[:8]}",
        ).job
        events: queue.Queue = queue.Queue()
        for tenant, client in (("acme", acme), ("globex", globex)):
            threading.Thread(target=_follow, args=(client, tenant, events, streams), daemon=True).start()

        _say("[5/5] live events (until the training job ends):")
        training_log = cluster.ray_job_log(f"{training.job_id}-r1")
        outcome = _show_until_done(events, ops, training.job_id, training_log, deadline=time.monotonic() + timeout_s)
        _say(f"\ncancelling the inference service {inference.job_id}")
        globex.cancel(inference.job_id, "demo finished")
        _drain_until(events, inference.job_id, types_pb2.JOB_STATE_CANCELLED, time.monotonic() + 30)

        _say("\ngrid events and how each was met:\n" + grid_commands.events_table(list(ops.grid_events().events), with_response=True))
        _say("\nacme's jobs:\n" + render.jobs_table(list(acme.list_all())))
        _say("\nglobex's jobs:\n" + render.jobs_table(list(globex.list_all())))
        _say("\nsites:\n" + operator_commands.sites_table(ops.sites().sites))
        if outcome == types_pb2.JOB_STATE_SUCCEEDED:
            _say(f"\ndemo finished in {time.monotonic() - started:.0f}s: training SUCCEEDED (its Ray log: {training_log})")
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


class _LogTail:
    """New complete lines of a growing log file."""

    def __init__(self, path: Path):
        self.path, self.offset, self.partial = path, 0, ""

    def lines(self) -> list[str]:
        try:
            with open(self.path, errors="replace") as f:
                f.seek(self.offset)
                text = f.read()
                self.offset = f.tell()
        except OSError:
            return []
        *complete, self.partial = (self.partial + text).split("\n")
        return [line for line in complete if line.strip()]


def _post_cap_cut(ops: Client) -> None:
    """A cap cut on us-tx-1 a little under what its AI and paused miners draw."""
    floor_w = sum(f.count * MINER_MODELS[f.model].standby_w for f in TX_POWER.fleets)  # every miner paused
    it_w = 8 * TX_POWER.gpu_idle_w + 4 * (TX_POWER.gpu_load_w - TX_POWER.gpu_idle_w) + floor_w  # idle GPUs + the training run at load
    cap_w = it_w * Cooling.AIR.default_overhead - 500
    start = time.time() + CUT_AHEAD_S
    event = operator_pb2.GridEvent(
        event_id=f"demo-cut-{uuid.uuid4().hex[:6]}",
        kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
        site_id="us-tx-1",
        cap_w=cap_w,
        start=timestamp(start),
        end=timestamp(start + CUT_LENGTH_S),
        reason="ERCOT 4CP peak (demo)",
    )
    ops.post_grid_event(event)
    _say(f"  ops     grid event: cap us-tx-1 at {watts_text(cap_w)} from +{CUT_AHEAD_S:g}s for {CUT_LENGTH_S:g}s (ERCOT 4CP peak)")


def _power_line(ops: Client) -> str:
    parts = []
    for s in ops.sites().sites:
        p = s.power
        parts.append(
            f"{s.site_id} {s.gpus_free}/{s.gpus_total} GPUs free, meter {watts_text(p.measured_w)} of {watts_text(p.cap_w)} "
            f"(AI {watts_text(p.ai_w)}, mining {watts_text(p.mining_w)})"
        )
    return "  |  ".join(parts)


def _show_until_done(events: queue.Queue, ops: Client, job_id: str, log_path: Path, deadline: float) -> int | None:
    next_sites = time.monotonic() + 3
    cut_posted = False
    tail = _LogTail(log_path)
    while time.monotonic() < deadline:
        for line in tail.lines():
            if line.startswith("epoch"):
                _say(f"  acme    training progress: {line}")
        try:
            tenant, event = events.get(timeout=0.5)
        except queue.Empty:
            tenant = None
        if tenant is not None:
            _say(f"  {tenant:<7} {render.event_line(event)}")
            if event.job_id == job_id and event.to_state == types_pb2.JOB_STATE_RUNNING and not cut_posted:
                _post_cap_cut(ops)
                cut_posted = True
            if event.job_id == job_id and event.to_state in (types_pb2.JOB_STATE_SUCCEEDED, types_pb2.JOB_STATE_FAILED, types_pb2.JOB_STATE_CANCELLED):
                return event.to_state
        if time.monotonic() >= next_sites:
            _say(f"  power: {_power_line(ops)}")
            next_sites = time.monotonic() + 3
    return None


def _drain_until(events: queue.Queue, job_id: str, state: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            tenant, event = events.get(timeout=0.5)
        except queue.Empty:
            continue
        _say(f"  {tenant:<7} {render.event_line(event)}")
        if event.job_id == job_id and event.to_state == state:
            return
