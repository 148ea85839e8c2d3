"""Fair share end to end, through real gRPC and Ray on the shared session cluster:
dominant resource fairness, not submission order, decides which tenant's waiting job
takes GPUs that free up. A live reload sets `fair_share: {weights: {acme: 1, globex: 1}}`
(no contracts). acme runs 6 GPUs and globex 2 on us-1 (full); acme then submits A2
(2 GPUs) before globex submits G2 (2 GPUs), and both wait, G2 ahead of A2 in the queue
(globex's dominant share, 2/8, is below acme's, 6/8). globex's running job is cancelled:
under plain first come first served the older A2 (same priority) would take the two GPUs;
under DRF globex's share (0/8 once its run is gone) is below acme's, so G2 runs on us-1 and
A2 keeps waiting, never SCHEDULED. The fixture's config is written back and reloaded
afterwards.

us is the region used: the tests before this one (alphabetically, in the same session)
leave nothing running on us-1 (this one waits for it to be idle), and it waits for us-1
to be idle again before it ends.
"""

from __future__ import annotations

import uuid

import pytest

from scheduler.api.v1 import types_pb2 as S
from scheduler.client import spec
from tests.integration.conftest import TERMINAL, wait_until
from tests.integration.live_config import reconfigured

pytestmark = pytest.mark.integration
REGION, SITE = "us", "us-1"
SLEEP = "python -c 'import time; time.sleep(600)'"



def _ahead(reason: str) -> int:
    """How many jobs a pending reason says are ahead of it ("3 jobs ahead; ...")."""
    head, sep, _ = reason.partition(" ahead; ")
    return int(head.split(" ")[0]) if sep else 0


def test_drf_gives_freed_gpus_to_the_tenant_with_the_lower_dominant_share(ray_system):
    acme, globex = ray_system.acme, ray_system.globex
    tag = uuid.uuid4().hex[:8]
    with reconfigured(ray_system, {"fair_share": {"weights": {"acme": 1, "globex": 1}}}, "contracts", SITE) as jobs:
        def submit(client, name: str, gpus: int):
            job = client.submit(spec(SLEEP, gpus=gpus, allowed_regions=[REGION], name=name), f"fair-{name}-{tag}").job
            jobs.append((client, job.job_id))
            return job

        # us-1 full: acme 6 GPUs, globex 2.
        big = submit(acme, "acme-6", 6)
        small = submit(globex, "globex-2", 2)
        for client, job in ((acme, big), (globex, small)):
            assert ray_system.wait_state(client, job.job_id, S.JOB_STATE_RUNNING, timeout_s=120).site_id == SITE

        # acme's A2 first, then globex's G2: both wait, G2 ahead (globex's share 2/8 < acme's 6/8).
        a2 = submit(acme, "a2", 2)
        g2 = submit(globex, "g2", 2)
        assert (a2.created_at.seconds, a2.created_at.nanos) <= (g2.created_at.seconds, g2.created_at.nanos)  # A2 is the older

        def both_waiting_g2_ahead():
            a, g = acme.get(a2.job_id), globex.get(g2.job_id)
            assert a.state not in TERMINAL and g.state not in TERMINAL, (a, g)
            waiting = a.state == g.state == S.JOB_STATE_PENDING and a.pending_reason and g.pending_reason
            return (a, g) if waiting and _ahead(a.pending_reason) > _ahead(g.pending_reason) else None

        try:
            a, g = wait_until(both_waiting_g2_ahead, 60, "A2 and G2 pending, G2 ahead of A2 in the queue")
        except AssertionError as err:
            a, g = acme.get(a2.job_id), globex.get(g2.job_id)
            raise AssertionError(f"{err}; A2: {S.JobState.Name(a.state)} {a.pending_reason!r}; G2: {S.JobState.Name(g.state)} {g.pending_reason!r}") from None

        # globex's run goes: its share drops to 0/8, below acme's 6/8: G2 takes the two GPUs.
        globex.cancel(small.job_id, "fair share test: free 2 GPUs")
        ray_system.wait_state(globex, small.job_id, S.JOB_STATE_CANCELLED, timeout_s=90)

        def g2_running():
            job = globex.get(g2.job_id)
            assert job.state not in TERMINAL, job
            assert acme.get(a2.job_id).state == S.JOB_STATE_PENDING, acme.get(a2.job_id)  # A2 never jumps ahead
            return job if job.state == S.JOB_STATE_RUNNING else None

        try:
            running = wait_until(g2_running, 120, "globex's G2 to run on the freed GPUs", interval_s=0.1)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- scheduler log:\n{ray_system.cluster.scheduler.tail(40)}") from None
        assert running.site_id == SITE, running

        # A2 still waits, saying why, and was never placed.
        waiting = wait_until(lambda: (j := acme.get(a2.job_id)).pending_reason and j, 30, "A2's pending reason")
        assert waiting.state == S.JOB_STATE_PENDING and waiting.attempt == 0 and not waiting.site_id, waiting
        states = [S.JobState.Name(e.to_state).removeprefix("JOB_STATE_") for e in ray_system.events(acme, a2.job_id)]
        assert states == ["PENDING"], states
        assert "SCHEDULED" in [S.JobState.Name(e.to_state).removeprefix("JOB_STATE_") for e in ray_system.events(globex, g2.job_id)]
