"""Inference latency with and without a grid cap cut that mining absorbs.

One power-managed site (tx-1: 60 kW cap at the meter, air cooling x1.1, 8 virtual GPUs
at 1,000 W load / 150 W idle, two emulated miner fleets the agent drives itself, 2 s
ramps) on a local Ray cluster, with the scheduler and its agent (LocalCluster). A Serve
inference service (examples.inference.service:app, a CPU stand-in for an LLM whose
requests take ~2-120 ms by their token counts; 1 GPU per replica, 1-4 replicas at
--target-rps per replica) is driven with real HTTP requests replaying the Azure LLM
inference conversation trace (the data folder of scheduler/sim/data.py), time-compressed to --rps on average,
open loop (aiohttp).

1. warm-up: --warmup-s of load, until the service has scaled for it;
2. baseline: --phase-s of load, no grid event;
3. with cap cut: the same slice of the trace again (same requests, same times);
   5 s in, a CAP_LIMIT cuts the site to half its cap (posted through OperatorService,
   in force 4 s later, until after the phase): mining curtails, AI keeps its power.
Measured per phase: latency of every request (send to full response) p50/p99/max,
requests and errors, the service's replicas (min/max seen by the scheduler); for the
cut: mining power before and during it, whether it was met, and the response's
ladder steps that touched inference (expected: none).

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/inference_slo.py [--rps 12] [--phase-s 30]'

Run it in a network namespace (Ray listens widely). Progress on stderr; ends with one
JSON line: p50_ms_baseline, p99_ms_baseline, p50_ms_with_cap_cut, p99_ms_with_cap_cut
and more (counts, errors, replicas, mining power).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Ray fixes its auth mode at import: token auth with one token file for cluster and clients.
_TOKEN = Path(tempfile.mkdtemp(prefix="pp-bench-ray-")) / "token"
_TOKEN.write_text(secrets.token_hex(32))
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(_TOKEN), RAY_USAGE_STATS_ENABLED="0")

from examples.inference.load import Load, azure_arrivals, conversation_trace, percentile  # noqa: E402
from examples.inference.service import service_time_ms  # noqa: E402
from powerplane_dev.cluster import FleetSpec, LocalCluster, SitePowerSpec, SiteSpec, wait_for  # noqa: E402
from scheduler.api.convert import timestamp  # noqa: E402
from scheduler.api.v1 import operator_pb2, types_pb2  # noqa: E402
from scheduler.client import Client, spec  # noqa: E402

SETTINGS = {"mining": {"min_on_s": 0, "min_off_s": 0}, "cap_lead_s": 1.0, "power_interval_s": 0.5, "serve_cooldown_s": 300.0}  # no scale-down mid-measurement
POWER = SitePowerSpec(
    interconnect_cap_mw=0.060,
    cooling="air",
    gpu_load_w=1000,
    gpu_idle_w=150,
    market_node="HB_WEST",
    fleets=(FleetSpec("s19", "S19XP", 10, ramp_down_s=2, ramp_up_s=2), FleetSpec("s21", "S21", 10, ramp_down_s=2, ramp_up_s=2)),
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Sampler:
    """The service's replicas (as the scheduler has them) and the site's mining power, every 0.5 s."""

    def __init__(self, cluster: LocalCluster, tenant: Client, job_id: str):
        self.ops = Client(cluster.scheduler_target, cluster.operator_token)
        self.tenant, self.job_id = tenant, job_id
        self.samples: list[tuple[float, int, float]] = []  # (monotonic, replicas, mining W)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.tenant.get(self.job_id).replicas, self.ops.site("tx-1").site.power.mining_w))
            except Exception as err:  # the bench must not die of one failed read
                say(f"sample failed: {err}")
            self._stop.wait(0.5)

    def between(self, start: float, end: float) -> list[tuple[float, int, float]]:
        return [s for s in self.samples if start <= s[0] <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.ops.close()


def phase(endpoint: str, skip: int, count: int, rps: float, during=None) -> tuple[Load, float, float]:
    load = Load(endpoint, azure_arrivals(skip=skip, count=count, mean_rps=rps), timeout_s=30).start()
    started = time.monotonic()
    if during is not None:
        during()
    while not load.done:
        time.sleep(0.5)
    return load, started, time.monotonic()


def summary(load: Load) -> dict:
    ok = [r.latency_ms for r in load.results if r.ok]
    return {
        "requests": len(load.results),
        "errors": sum(1 for r in load.results if not r.ok),
        "p50_ms": round(percentile(ok, 0.50), 2),
        "p99_ms": round(percentile(ok, 0.99), 2),
        "max_ms": round(max(ok, default=float("nan")), 2),
    }


def main() -> None:
    try:
        conversation_trace()
    except FileNotFoundError as err:
        raise SystemExit(f"bench/inference_slo.py replays the Azure trace: {err}") from None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=12.0, help="mean request rate of the replayed trace (req/s)")
    parser.add_argument("--target-rps", type=float, default=5.0, help="the service's target_rps_per_replica")
    parser.add_argument("--phase-s", type=float, default=40.0, help="length of each measured phase (s)")
    parser.add_argument("--warmup-s", type=float, default=20.0)
    args = parser.parse_args()
    per_phase = int(args.rps * args.phase_s)
    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-slo-"))
    cluster = LocalCluster(workdir, [SiteSpec("tx-1", "us", gpus=8, power=POWER)], regions=("us",), heartbeat_interval_s=1.0, scheduler_settings=SETTINGS)
    result: dict = {}
    try:
        say("starting Ray, the scheduler and the agent")
        cluster.start_ray()
        cluster.start_scheduler()
        cluster.start_agents()
        ops = Client(cluster.scheduler_target, cluster.operator_token)
        acme = Client(cluster.scheduler_target, cluster.tenant_token("acme"))
        cluster.wait_sites_ready(ops, timeout_s=120)
        wait_for(lambda: ops.site("tx-1").site.power.mining_w > 40_000, 60, "mining to fill the cap")
        serve = types_pb2.ServeSpec(import_path="examples.inference.service:app", min_replicas=1, max_replicas=4, target_rps_per_replica=args.target_rps)
        job = acme.submit(spec("serve examples.inference.service:app", gpus=1, kind=types_pb2.JOB_KIND_INFERENCE, serve=serve, name="slo"), "slo-1").job
        wait_for(lambda: acme.get(job.job_id).state == types_pb2.JOB_STATE_RUNNING and acme.get(job.job_id).endpoint, 90, "the service to run")
        endpoint = acme.get(job.job_id).endpoint
        say(f"service {job.job_id} running at {endpoint}")
        sampler = Sampler(cluster, acme, job.job_id)

        say(f"warm-up: {args.warmup_s:g} s at {args.rps:g} req/s")
        warm, _, _ = phase(endpoint, 0, int(args.rps * args.warmup_s), args.rps)
        say(f"warm-up done: {summary(warm)}, replicas {acme.get(job.job_id).replicas}")

        say(f"baseline: {per_phase} requests at {args.rps:g} req/s")
        skip = int(args.rps * args.warmup_s)
        base, b0, b1 = phase(endpoint, skip, per_phase, args.rps)
        baseline = summary(base)
        say(f"baseline: {baseline}")

        cut: dict = {}

        def post_cut():
            time.sleep(5)
            power = ops.site("tx-1").site.power
            cut["mining_before_w"], cut["cap_w"] = power.mining_w, power.cap_w / 2
            now = time.time()
            event = operator_pb2.GridEvent(
                event_id="slo-cut",
                kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
                site_id="tx-1",
                cap_w=cut["cap_w"],
                start=timestamp(now + 4),  # the scheduler plans for it from now (ramp + cap_lead_s)
                end=timestamp(now + args.phase_s + 15),
                reason="bench: a cut mining absorbs",
            )
            ops.post_grid_event(event)
            cut["posted"] = time.monotonic()
            say(f"cap cut posted: {power.cap_w / 1000:.1f} kW -> {cut['cap_w'] / 1000:.1f} kW (mining {power.mining_w / 1000:.1f} kW)")

        say(f"with cap cut: {per_phase} requests at {args.rps:g} req/s, the cut 5 s in")
        with_cut, c0, c1 = phase(endpoint, skip, per_phase, args.rps, during=lambda: threading.Thread(target=post_cut, daemon=True).start())
        during_cut = summary(with_cut)
        say(f"with cap cut: {during_cut}")
        sampler.close()
        record = next(e for e in ops.grid_events(site_id="tx-1").events if e.event.event_id == "slo-cut")
        in_cut = [s for s in sampler.between(cut.get("posted", c0) + 5, c1)]
        replicas_base = [s[1] for s in sampler.between(b0, b1)]
        replicas_cut = [s[1] for s in sampler.between(c0, c1)]
        final = acme.get(job.job_id)
        service_ms = [service_time_ms(a.prompt_tokens, a.max_tokens) for a in azure_arrivals(skip=skip, count=per_phase, mean_rps=args.rps)]
        result = {
            "p50_ms_baseline": baseline["p50_ms"],
            "p99_ms_baseline": baseline["p99_ms"],
            "p50_ms_with_cap_cut": during_cut["p50_ms"],
            "p99_ms_with_cap_cut": during_cut["p99_ms"],
            "max_ms_baseline": baseline["max_ms"],
            "max_ms_with_cap_cut": during_cut["max_ms"],
            "requests_baseline": baseline["requests"],
            "requests_with_cap_cut": during_cut["requests"],
            "errors_baseline": baseline["errors"],
            "errors_with_cap_cut": during_cut["errors"],
            "replicas_baseline": [min(replicas_base, default=0), max(replicas_base, default=0)],
            "replicas_with_cap_cut": [min(replicas_cut, default=0), max(replicas_cut, default=0)],
            "preemptions": final.preemptions,
            "attempt": final.attempt,
            "mining_kw_before_cut": round(cut.get("mining_before_w", 0.0) / 1000, 1),
            "mining_kw_during_cut": round(min((s[2] for s in in_cut), default=0.0) / 1000, 1),
            "cap_kw_during_cut": round(cut.get("cap_w", 0.0) / 1000, 1),
            "cut_met": record.met,
            "cut_steps_touching_inference": sum(1 for line in record.response if "inference" in line),
            "service_ms_p50": round(percentile(service_ms, 0.50), 2),  # what the stand-in itself takes, same slice
            "service_ms_p99": round(percentile(service_ms, 0.99), 2),
            "mean_rps": args.rps,
            "target_rps_per_replica": args.target_rps,
            "phase_s": args.phase_s,
        }
        acme.cancel(job.job_id)
        ops.close()
        acme.close()
    finally:
        say("stopping")
        cluster.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
