"""Contracts end to end, through real gRPC and Ray on the shared session cluster: a
contract loaded by a live config reload makes a firm claim reclaim another tenant's
borrowed training run. globex (no contract in eu: everything it runs there is borrowed)
fills eu-1's 8 GPUs; acme, with an 8-GPU firm contract in eu, asks for 4: it fits
nowhere, so globex's run is preempted with its checkpoint grace capped at
reclaim_grace_s / 2 ("reclaimed by tenant acme's contract ..."), requeued, and acme's job
runs on eu-1 once the run is gone, while globex's job waits saying it has no contract
there. The fixture's config is written back and reloaded afterwards.

eu is the region used: the tests before this one (alphabetically, in the same session)
leave nothing running there, and the next test using it (test_job_lifecycle.py) runs
after this one has cancelled its jobs and seen eu-1's GPUs free again.
"""

from __future__ import annotations

import uuid

import pytest

from scheduler.api.v1 import types_pb2 as S
from scheduler.client import spec
from tests.integration.conftest import wait_until
from tests.integration.live_config import reconfigured, seconds, wait_running_with_reasons

pytestmark = pytest.mark.integration
REGION, SITE = "eu", "eu-1"
GRACE_S = 6  # fair_share.reclaim_grace_s: runs reclaimable after 3 s, checkpoint grace at most 3 s
SLEEP = "python -c 'import time; time.sleep(600)'"




def test_a_firm_claim_reclaims_another_tenants_borrowed_run(ray_system):
    acme, globex = ray_system.acme, ray_system.globex
    tag = uuid.uuid4().hex[:8]
    with reconfigured(ray_system, {"contracts": [{"tenant": "acme", "region": REGION, "firm_gpus": 8}], "fair_share": {"reclaim_grace_s": GRACE_S}}, "contracts", SITE) as jobs:
        # globex borrows all of eu-1.
        borrowed = globex.submit(spec(SLEEP, gpus=8, allowed_regions=[REGION], checkpoint_grace_s=30, name="borrower"), f"contracts-borrow-{tag}").job
        jobs.append((globex, borrowed.job_id))
        running = ray_system.wait_state(globex, borrowed.job_id, S.JOB_STATE_RUNNING, timeout_s=120)
        assert running.site_id == SITE

        # acme's claim is within its firm share and fits nowhere: globex's run is reclaimed.
        claim = acme.submit(spec(SLEEP, gpus=4, allowed_regions=[REGION], name="firm-claim"), f"contracts-claim-{tag}").job
        jobs.append((acme, claim.job_id))
        reasons = wait_running_with_reasons(ray_system, acme, claim.job_id, "acme's firm claim to run")
        placed = acme.get(claim.job_id)
        assert placed.site_id == SITE and placed.attempt == 1
        assert any(f"reclaiming 1 borrowed run for tenant acme's contract (grace {GRACE_S // 2} s)" in r for r in reasons), reasons

        # globex's run went through PREEMPTED, naming the claim, with its grace capped, and was requeued.
        events = ray_system.events(globex, borrowed.job_id)
        states = [S.JobState.Name(e.to_state).removeprefix("JOB_STATE_") for e in events]
        assert states[:5] == ["PENDING", "SCHEDULED", "STARTING", "RUNNING", "PREEMPTED"], states
        stop = events[4]
        assert stop.site_id == SITE
        assert stop.reason.startswith(f"reclaimed by tenant acme's contract for job {claim.job_id} (borrowed beyond tenant globex's firm share in {REGION})"), (
            stop.reason
        )
        assert f"asked to checkpoint within {GRACE_S // 2}s" in stop.reason, stop.reason  # 30 s asked, capped at grace / 2
        assert seconds(stop.at) - seconds(events[3].at) >= GRACE_S / 2 - 0.1  # reclaimable once it ran grace / 2
        assert len(states) >= 6 and states[5] == "PENDING", states
        requeued = events[5]
        assert "reclaimed by tenant acme's contract" in requeued.reason and "requeued" in requeued.reason, requeued.reason

        # The claim kept its room while the run stopped: it was placed only once the run was gone.
        claim_events = ray_system.events(acme, claim.job_id)
        scheduled = next(e for e in claim_events if e.to_state == S.JOB_STATE_SCHEDULED)
        assert seconds(scheduled.at) >= seconds(requeued.at), (scheduled, requeued)

        # globex waits, and says where it stands: borrowed, no contract, no room.
        def globex_waiting():
            job = globex.get(borrowed.job_id)
            assert job.state in (S.JOB_STATE_PENDING, S.JOB_STATE_PREEMPTED), job
            return job if job.state == S.JOB_STATE_PENDING and f"tenant globex has no contract in {REGION}" in job.pending_reason else None

        waiting = wait_until(globex_waiting, 30, "globex's requeued job to say why it waits")
        assert "8 free GPUs" in waiting.pending_reason, waiting.pending_reason
        assert waiting.preemptions == 1, waiting
