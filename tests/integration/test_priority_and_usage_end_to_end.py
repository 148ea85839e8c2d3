"""Priority preemption and its accounting end to end, through real gRPC and Ray on the
shared session cluster. A live reload turns preemption on with a short min_run_s; acme's
priority-0 8-GPU training run fills eu-1; globex's priority-5 4-GPU job fits nowhere, so
acme's run is preempted for it once it has run min_run_s ("preempted for higher-priority
job <globex's job> (priority 5 over 0) ... asked to checkpoint within 2s"), requeued, and
left PENDING saying why while globex's job runs on eu-1. After both are cancelled, each
tenant's usage (TenantService.GetUsage, and `powerplane usage --output json`, which must
agree) bills exactly the RUNNING time the jobs' own events show (GPUs x RUNNING to the
next event: the checkpoint grace and the cancel's stop are not billed) and counts the one
preemption acme suffered and none for globex. The fixture's config is written back and
reloaded afterwards.

eu is the region used: the tests before this one in the session leave eu-1 idle (this
one waits for that), and it waits for eu-1 to be idle again before it ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.api.v1 import types_pb2 as S
from scheduler.client import spec
from tests.integration.conftest import wait_until
from tests.integration.live_config import reconfigured, seconds, wait_running_with_reasons

pytestmark = pytest.mark.integration
REGION, SITE = "eu", "eu-1"
MIN_RUN_S = 3  # preemption.min_run_s: acme's run is preemptable 3 s after it starts
GRACE_S = 2  # acme's checkpoint_grace_s
SLEEP = "python -c 'import time; time.sleep(600)'"
ROOT = Path(__file__).resolve().parents[2]
POWERPLANE = str(Path(sys.executable).parent / "powerplane")
# Event times travel as Timestamps (ns) and are stored as float seconds: a ms per event is ample.
EVENT_TIME_TOLERANCE_S = 1e-3




def _running_s(events) -> float:
    """Seconds RUNNING as docs/usage.md defines it: from each event entering RUNNING to the job's next event."""
    total = 0.0
    for event, following in zip(events, events[1:], strict=False):
        if event.to_state == S.JOB_STATE_RUNNING:
            total += seconds(following.at) - seconds(event.at)
    assert events and events[-1].to_state != S.JOB_STATE_RUNNING, events  # every run has ended
    return total


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _cli_usage(system, tenant: str, start: float, end: float) -> dict:
    env = {
        "POWERPLANE_SCHEDULER": system.cluster.scheduler_target,
        "POWERPLANE_TOKEN": system.cluster.tenant_token(tenant),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    args = [POWERPLANE, "usage", "--tenant", tenant, "--from", _iso(start), "--to", _iso(end), "--output", "json"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout)


def test_a_higher_priority_job_preempts_a_lower_one_and_usage_bills_what_ran(ray_system):
    acme, globex = ray_system.acme, ray_system.globex
    tag = uuid.uuid4().hex[:8]
    with reconfigured(ray_system, {"preemption": {"enabled": True, "min_run_s": MIN_RUN_S, "priority_gap": 1}}, "preemption", SITE) as jobs:
        window_start = time.time() - 1.0
        # acme's low-priority training fills eu-1.
        low = acme.submit(spec(SLEEP, gpus=8, allowed_regions=[REGION], priority=0, checkpoint_grace_s=GRACE_S, name="low"), f"priority-low-{tag}").job
        jobs.append((acme, low.job_id))
        running = ray_system.wait_state(acme, low.job_id, S.JOB_STATE_RUNNING, timeout_s=120)
        assert running.site_id == SITE

        # globex's higher-priority job fits nowhere: acme's run is preempted for it.
        high = globex.submit(spec(SLEEP, gpus=4, allowed_regions=[REGION], priority=5, checkpoint_grace_s=GRACE_S, name="high"), f"priority-high-{tag}").job
        jobs.append((globex, high.job_id))
        reasons = wait_running_with_reasons(ray_system, globex, high.job_id, "globex's higher-priority job to run")
        placed = globex.get(high.job_id)
        assert placed.site_id == SITE and placed.preemptions == 0, placed
        assert any(f"waiting for 4 GPUs on {SITE} ({REGION}): preempting 1 lower-priority run (grace {GRACE_S} s)" in r for r in reasons), reasons

        # acme's run went RUNNING -> PREEMPTED (naming globex's job, with its grace) -> PENDING.
        events = ray_system.events(acme, low.job_id)
        states = [S.JobState.Name(e.to_state).removeprefix("JOB_STATE_") for e in events]
        assert states[:6] == ["PENDING", "SCHEDULED", "STARTING", "RUNNING", "PREEMPTED", "PENDING"], states
        started, stop, requeued = events[3], events[4], events[5]
        assert stop.site_id == SITE
        assert stop.reason.startswith(f"preempted for higher-priority job {high.job_id} (priority 5 over 0)"), stop.reason
        assert stop.reason.endswith(f"asked to checkpoint within {GRACE_S}s"), stop.reason
        assert seconds(stop.at) - seconds(started.at) >= MIN_RUN_S - 0.1  # not before min_run_s
        assert f"preempted for higher-priority job {high.job_id}" in requeued.reason and requeued.reason.endswith("requeued"), requeued.reason

        # globex's job was placed only once acme's run was gone.
        high_events = ray_system.events(globex, high.job_id)
        scheduled = next(e for e in high_events if e.to_state == S.JOB_STATE_SCHEDULED)
        assert seconds(scheduled.at) >= seconds(requeued.at), (scheduled, requeued)

        # acme's job waits (no room left in eu, and it may not preempt back), saying why.
        def low_waiting():
            job = acme.get(low.job_id)
            assert job.state == S.JOB_STATE_PENDING, job
            return job if job.pending_reason and job.pending_reason != "requeued after preemption" else None

        waiting = wait_until(low_waiting, 30, "acme's requeued job to say why it waits")
        assert waiting.preemptions == 1 and waiting.attempt == 1, waiting
        assert "8" in waiting.pending_reason and "preempting" not in waiting.pending_reason, waiting.pending_reason

        # Cancel both; once they are CANCELLED their events are final.
        for client, job_id in reversed(jobs):
            client.cancel(job_id, "priority test over")
        for client, job_id in jobs:
            ray_system.wait_state(client, job_id, S.JOB_STATE_CANCELLED, timeout_s=90)
        window_end = time.time()  # before now: the RPC and the CLI read the same window

        # Accounting: exactly the RUNNING time each job's events show, and the one preemption.
        expected = {
            "acme": (low.job_id, 8 * _running_s(ray_system.events(acme, low.job_id)), 1),
            "globex": (high.job_id, 4 * _running_s(ray_system.events(globex, high.job_id)), 0),
        }
        assert expected["acme"][1] >= 8 * (MIN_RUN_S - 0.1) and expected["globex"][1] > 0, expected
        for tenant, client in (("acme", acme), ("globex", globex)):
            job_id, gpu_s, preemptions = expected[tenant]
            tolerance_h = 4 * 8 * EVENT_TIME_TOLERANCE_S / 3600  # a few event times, 8 GPUs at most
            report = client.usage(tenant, window_start, window_end, max_jobs=1000)
            assert report.tenant == tenant and report.history_complete, report
            figures = {j.job_id: j.figures for j in report.jobs}
            assert job_id in figures, (tenant, report)
            mine = figures[job_id]
            assert mine.gpu_hours > 0 and mine.gpu_hours == pytest.approx(gpu_s / 3600, abs=tolerance_h), (tenant, gpu_s, mine)
            assert mine.preemptions == preemptions, (tenant, mine)
            if preemptions:  # the preempted run's GPU-hours: all it ran (it ran once)
                assert mine.preempted_gpu_hours == pytest.approx(mine.gpu_hours, abs=tolerance_h), mine
            # Nothing else in the window was preempted; the totals cover at least this job.
            assert report.totals.preemptions == preemptions, (tenant, report.totals)
            assert report.totals.gpu_hours >= mine.gpu_hours - tolerance_h, (tenant, report.totals)

            # The CLI reads the same report.
            cli = _cli_usage(ray_system, tenant, window_start, window_end)
            assert cli["tenant"] == tenant, cli
            by_job = {j["job_id"]: j.get("figures", {}) for j in cli.get("jobs", [])}
            assert by_job[job_id].get("gpu_hours", 0.0) == pytest.approx(mine.gpu_hours, abs=1e-9), (cli, mine)
            assert by_job[job_id].get("preemptions", 0) == preemptions, cli
            assert cli["totals"].get("preemptions", 0) == report.totals.preemptions, cli
            assert cli["totals"].get("gpu_hours", 0.0) == pytest.approx(report.totals.gpu_hours, abs=1e-9), (cli, report.totals)
