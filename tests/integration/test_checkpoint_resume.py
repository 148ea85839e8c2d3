"""Training that survives preemption, end to end: the example Ray Train (PyTorch, CPU)
workload runs on tx-1, a grid cap cut there preempts it, it checkpoints within its
grace, is requeued with the work it lost recorded in its events, resumes on us-1 from
its checkpoint and finishes with the step count of an uninterrupted run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from scheduler.client import spec
from tests.integration.conftest import wait_until
from tests.integration.helpers import cap_cut

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY = 150, 25
TRAIN = f"{sys.executable} {REPO}/examples/training/train_regression.py --steps {STEPS} --checkpoint-every {EVERY} --step-sleep-s 0.1 --workers 2"


def test_preempted_training_checkpoints_resumes_on_another_site_and_finishes(ray_system):
    from scheduler.api.v1 import types_pb2 as S

    ops, acme = ray_system.ops, ray_system.acme
    for site in ("us-1", "eu-1"):  # start it on tx-1: the only site taking work for now
        ops.drain(site, "checkpoint test: start on tx-1")
    try:
        job = acme.submit(spec(TRAIN, gpus=4, allowed_regions=["tx", "us"], checkpoint_grace_s=20), "ckpt-train").job
        ray_system.wait_state(acme, job.job_id, S.JOB_STATE_RUNNING, timeout_s=90)
        assert acme.get(job.job_id).site_id == "tx-1"
        ops.undrain("us-1")  # somewhere to resume
        # Train past a few checkpoints, then cut tx-1's cap below what the run draws.
        wait_until(lambda: acme.get(job.job_id).checkpoint.step >= 2 * EVERY + 5, 120, "training past two checkpoints")
        cap = (1200 + 500) * 1.1 + 1000  # idle GPUs + mining's floor, x1.1 air, + 1 kW: no room for 4 x 850 W
        start = time.time() + 20
        posted_at = time.time()
        ops.post_grid_event(cap_cut("ckpt-cut", cap, start, start + 25))
        # Preempted, requeued and placed again within moments: follow the attempts, then read the events.
        wait_until(lambda: acme.get(job.job_id).attempt >= 2, 90, "the job to be placed again after its preemption")
        resumed = ray_system.wait_state(acme, job.job_id, [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED], timeout_s=90)
        assert resumed.site_id == "us-1" and resumed.attempt == 2 and resumed.preemptions == 1
        done = ray_system.wait_state(acme, job.job_id, S.JOB_STATE_SUCCEEDED, timeout_s=180)
    finally:
        ops.undrain("us-1")
        ops.undrain("eu-1")

    # The events say when and why it was preempted, and how much work was lost.
    events = ray_system.events(acme, job.job_id)
    states = [S.JobState.Name(e.to_state) for e in events]
    assert states.count("JOB_STATE_PREEMPTED") == 1 and states[-1] == "JOB_STATE_SUCCEEDED"
    stop = next(e for e in events if e.to_state == S.JOB_STATE_PREEMPTED)
    requeue = events[states.index("JOB_STATE_PREEMPTED") + 1]
    assert stop.site_id == "tx-1" and "cap limit" in stop.reason and "asked to checkpoint within" in stop.reason
    assert posted_at - 1 <= stop.at.seconds + stop.at.nanos / 1e9 <= start
    assert requeue.to_state == S.JOB_STATE_PENDING and "work lost: 0 steps" in requeue.reason, requeue.reason
    assert "resumes from its checkpoint at step" in requeue.reason

    # The files: the second run started where the first one's last checkpoint left off.
    directory = Path(done.checkpoint.uri)
    history = [json.loads(line) for line in (directory / "history.jsonl").read_text().splitlines()]
    assert [h["site"] for h in history] == ["tx-1", "us-1"] and history[0]["start_step"] == 0
    resume_step = history[1]["start_step"]
    lost_steps = int(requeue.reason.split("stopped at step ")[1].split(";")[0]) - resume_step
    assert resume_step >= 2 * EVERY and 0 <= lost_steps <= EVERY  # at most one checkpoint interval
    result = json.loads((directory / "result.json").read_text())
    assert result["steps"] == STEPS == done.checkpoint.checkpoint_step
