"""Preemption with checkpoints: how fast a cap cut stops training with a fresh
checkpoint, how much work it loses, and how fast training resumes when the cap comes
back; beside it, the baseline: the same cut with no checkpoint grace (stopped at once).

One power-managed site (8 virtual GPUs at 1,000 W, 150 W idle, air x1.1, two in-agent
emulated fleets with 2 s ramps, cap 60 kW) on a local Ray cluster, the scheduler and
its agent through LocalCluster. The workload is the example (examples/training/
train_regression.py: Ray Train, 2 CPU workers, PyTorch DDP) with --steps and
--checkpoint-every, 0.1 s per step. Once it has trained past its second checkpoint plus
half an interval, a CAP_LIMIT below the site's idle GPUs + mining floor + 1 kW is
posted through OperatorService, starting --lead-s later and lasting --hold-s; t0 = the
reply's received_at. Measured per mode:

- checkpoint_stop_s: t0 -> the job's PREEMPTED -> PENDING event (the agent saw the run
  gone), with the checkpoint it left (step, and whether it is newer than t0);
- work_lost_s / work_lost_steps: what the run trained past its last checkpoint
  (progress time - checkpoint time, from the run's own files, as the event records);
- resume_s: the cap restored (the event's end) -> the resumed run's first new step
  (the run's progress timestamp; the run resumes on the same site, the only one);
- the job then finishes: its final step count must equal --steps.

Modes: `grace` (checkpoint_grace_s 30, the cut --lead-s ahead: asked to checkpoint,
then stopped) and `baseline` (checkpoint_grace_s 0, a cut starting 2 s after it is
posted: stopped at once, loses what it trained since its last checkpoint).

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/preemption.py [--steps 200] [--checkpoint-every 40]'

Progress goes to stderr. Ends with one JSON line: checkpoint_stop_s, work_lost_s,
resume_s (grace mode) and the baseline's figures beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
_TOKEN = Path(tempfile.mkdtemp(prefix="pp-bench-ray-")) / "token"
_TOKEN.write_text(secrets.token_hex(32))
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(_TOKEN), RAY_USAGE_STATS_ENABLED="0")

from powerplane_dev.cluster import FleetSpec, LocalCluster, SitePowerSpec, SiteSpec, wait_for  # noqa: E402
from scheduler.api.convert import seconds, timestamp  # noqa: E402
from scheduler.api.v1 import operator_pb2, types_pb2  # noqa: E402
from scheduler.client import Client, spec  # noqa: E402

S = types_pb2
POWER = SitePowerSpec(
    interconnect_cap_mw=0.060,
    cooling="air",
    gpu_load_w=1000,
    gpu_idle_w=150,
    fleets=(FleetSpec("s19", "S19XP", 10, ramp_down_s=2, ramp_up_s=2), FleetSpec("s21", "S21", 10, ramp_down_s=2, ramp_up_s=2)),
)
SETTINGS = {"mining": {"min_on_s": 0, "min_off_s": 0}, "cap_lead_s": 2.0, "power_interval_s": 0.5}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def events_of(client: Client, job_id: str) -> list[S.JobEvent]:
    found = []
    try:
        for event in client.watch(0, job_id, timeout_s=2.0):
            found.append(event)
    except Exception:  # the watch ends at its deadline once the backlog is read
        pass
    return found


def run_mode(workdir: Path, mode: str, args) -> dict:
    grace = 30 if mode == "grace" else 0
    cluster = LocalCluster(
        workdir / mode,
        [SiteSpec("tx-1", "tx", gpus=8, cpus=2, power=POWER)],
        regions=("tx",),
        site_timeout_s=12.0,
        heartbeat_interval_s=1.0,
        scheduler_settings=SETTINGS,
    )
    try:
        say(f"{mode}: starting Ray, the scheduler and the agent")
        cluster.start_ray()
        cluster.start_scheduler()
        cluster.start_agents()
        tenant = Client(cluster.scheduler_target, cluster.tenant_token("acme"))
        ops = Client(cluster.scheduler_target, cluster.operator_token)
        cluster.wait_sites_ready(ops)
        entrypoint = (
            f"{sys.executable} {REPO}/examples/training/train_regression.py --steps {args.steps} --checkpoint-every {args.checkpoint_every} --step-sleep-s 0.1"
        )
        job = tenant.submit(spec(entrypoint, gpus=4, allowed_regions=["tx"], checkpoint_grace_s=grace), f"bench-{mode}").job
        trigger = 2 * args.checkpoint_every + args.checkpoint_every // 2
        say(f"{mode}: job {job.job_id} submitted; cutting the cap once it passes step {trigger}")
        wait_for(lambda: tenant.get(job.job_id).checkpoint.step >= trigger, 240, f"training past step {trigger}", 0.1)
        # The grace mode's cut comes --lead-s ahead, so the run may checkpoint first; the
        # baseline's bites at once (the same moment of training), with no time to checkpoint.
        start = time.time() + (args.lead_s if grace else 2.0)
        cap = (8 * 150 + 20 * 0 + 500) * 1.1 + 1000  # idle GPUs + a generous floor, x1.1, + 1 kW
        event = operator_pb2.GridEvent(
            event_id=f"bench-{mode}",
            kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT,
            site_id="tx-1",
            cap_w=cap,
            start=timestamp(start),
            end=timestamp(start + args.hold_s),
            reason="bench: cut that forces preemption",
        )
        t0 = seconds(ops.post_grid_event(event).received_at)
        end = start + args.hold_s
        wait_for(lambda: tenant.get(job.job_id).state == S.JOB_STATE_PENDING, 90, "the run stopped and requeued", 0.05)
        events = events_of(tenant, job.job_id)
        requeue = next(e for e in events if e.from_state == S.JOB_STATE_PREEMPTED and e.to_state == S.JOB_STATE_PENDING)
        stopped = tenant.get(job.job_id)
        stop_s = seconds(requeue.at) - t0
        ck = stopped.checkpoint
        lost_steps = max(0, ck.step - ck.checkpoint_step)
        lost_s = max(0.0, seconds(ck.step_at) - seconds(ck.checkpoint_at)) if lost_steps else 0.0
        say(
            f"{mode}: stopped {stop_s:.2f}s after the cut was posted at step {ck.step}; checkpoint step {ck.checkpoint_step}; lost {lost_steps} steps, {lost_s:.2f}s"
        )
        say(f"{mode}:   event: {requeue.reason}")
        fresh = seconds(ck.checkpoint_at) >= t0
        resume_step = ck.checkpoint_step

        def trained_again():
            current = tenant.get(job.job_id).checkpoint
            return current.step > resume_step and seconds(current.step_at) > end and current

        again = wait_for(trained_again, args.hold_s + 240, "the resumed run's first step", 0.05)
        resume_s = seconds(again.step_at) - end
        say(f"{mode}: cap restored at +{end - t0:.1f}s; training again {resume_s:.2f}s later (step {again.step})")
        wait_for(lambda: tenant.get(job.job_id).state in (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED), 300, "the job to finish", 0.5)
        final = tenant.get(job.job_id)
        say(f"{mode}: {S.JobState.Name(final.state)} at step {final.checkpoint.checkpoint_step} after {final.attempt} runs")
        return {
            "checkpoint_stop_s": round(stop_s, 3),
            "work_lost_s": round(lost_s, 3),
            "work_lost_steps": lost_steps,
            "resume_s": round(resume_s, 3),
            "fresh_checkpoint": fresh,
            "final_step": final.checkpoint.checkpoint_step,
            "succeeded": final.state == S.JOB_STATE_SUCCEEDED,
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=40)
    parser.add_argument("--lead-s", type=float, default=15.0, help="the cut starts this long after it is posted")
    parser.add_argument("--hold-s", type=float, default=20.0, help="how long the cut lasts")
    parser.add_argument("--mode", choices=("both", "grace", "baseline"), default="both")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-preempt-"))
    modes = ("grace", "baseline") if args.mode == "both" else (args.mode,)
    results = {mode: run_mode(workdir, mode, args) for mode in modes}
    out: dict = {"steps": args.steps, "checkpoint_every": args.checkpoint_every, "step_s": 0.1}
    if "grace" in results:
        out.update(results["grace"])
    if "baseline" in results:
        out.update({f"baseline_{k}": v for k, v in results["baseline"].items()})
    if "grace" in results and "baseline" in results:
        base = results["baseline"]["work_lost_s"]
        out["work_lost_ratio_vs_baseline"] = round(results["grace"]["work_lost_s"] / base, 3) if base else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
