"""A Serve inference service end to end: the scheduler places it on the power-managed
site tx-1, the agent deploys it on Ray Serve (HTTP on loopback), real HTTP load
replaying the Azure LLM inference trace (the full hour in ../shared/data, else the
30 minutes shipped in the package) drives its demand, the scheduler scales it up
(mining makes room first) and, once demand stays low, back down; a cap cut that
mining can absorb leaves it alone: same replicas, same run, every request answered."""

from __future__ import annotations

import time

import pytest

from examples.inference.load import Load, azure_arrivals
from scheduler.api.v1 import types_pb2
from scheduler.client import spec
from tests.integration.conftest import wait_until
from tests.integration.helpers import cap_cut

pytestmark = pytest.mark.integration
S = types_pb2
TARGET_RPS = 4.0  # per replica: 12 req/s wants 3 replicas, 1.5 req/s wants 1


def serve_spec(**fields) -> types_pb2.JobSpec:
    serve = types_pb2.ServeSpec(import_path="examples.inference.service:app", min_replicas=1, max_replicas=3, target_rps_per_replica=TARGET_RPS)
    return spec("serve examples.inference.service:app", gpus=1, kind=S.JOB_KIND_INFERENCE, allowed_regions=["tx"], serve=serve, **fields)


def replicas_answering(load: Load, since: float) -> set[str]:
    return {r.replica for r in load.since(since) if r.ok}


def test_a_serve_service_follows_demand_and_a_cap_cut_mining_absorbs_leaves_it_alone(ray_system):
    ops, acme = ray_system.ops, ray_system.acme
    wait_until(lambda: (p := ops.site("tx-1").site.power).mining_w > 40_000 and p.measured_w <= p.cap_w, 60, "mining to fill tx-1's cap")
    job = acme.submit(serve_spec(name="chat"), "serve-1").job
    try:
        running = ray_system.wait_state(acme, job.job_id, S.JOB_STATE_RUNNING, timeout_s=60)
        assert running.site_id == "tx-1" and running.replicas == 1
        endpoint = wait_until(lambda: acme.get(job.job_id).endpoint, 20, "the service's endpoint")
        assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith(f"/{job.job_id}")

        # Demand up: ~12 req/s of real conversation requests (time-compressed Azure arrivals).
        busy = Load(endpoint, azure_arrivals(skip=0, count=600, mean_rps=12.0)).start()
        try:
            scaled = wait_until(lambda: (j := acme.get(job.job_id)).replicas == 3 and j, 40, "the service to scale up to 3 replicas")
            assert scaled.requests_per_s > TARGET_RPS and scaled.attempt == 1  # more than one replica's worth (the reading that scaled it was > 2x)
            at_three = time.monotonic()
            wait_until(lambda: len(replicas_answering(busy, at_three)) == 3, 30, "three replicas answering")
            assert sum(r.gpus for r in ops.site("tx-1").runs if r.job_id == job.job_id) == 3

            # A cap cut that mining absorbs: AI keeps every watt, mining goes down instead.
            power = ops.site("tx-1").site.power
            cut_w = power.cap_w / 2
            assert cut_w > (8 * 150 + 3 * 850 + 500) * 1.1 + 5_000  # AI at load plus mining's floor fit with room to spare
            start, end = time.time() + 3, time.time() + 13
            event = cap_cut("serve-cut", cut_w, start, end)
            cut_sent = time.monotonic()
            ops.post_grid_event(event)
            wait_until(lambda: time.time() > end + 1, 20, "the cut to end")
            during = busy.since(cut_sent)
            assert during and all(r.ok for r in during), [r for r in during if not r.ok][:3]
            after_cut = acme.get(job.job_id)
            assert after_cut.replicas == 3 and after_cut.state == S.JOB_STATE_RUNNING and after_cut.attempt == 1 and after_cut.preemptions == 0
            record = next(e for e in ops.grid_events(site_id="tx-1").events if e.event.event_id == "serve-cut")
            assert record.met
            assert any("curtail mining" in line for line in record.response)
            assert not any("inference" in line for line in record.response)
        finally:
            busy.stop()
            busy.join(15)
        assert all(r.ok for r in busy.results), [r for r in busy.results if not r.ok][:3]

        # Demand down: ~1.5 req/s; after the cool-down the service goes back to its fewest.
        quiet = Load(endpoint, azure_arrivals(skip=600, count=60, mean_rps=1.5)).start()
        try:
            wait_until(lambda: acme.get(job.job_id).replicas == 1, 40, "the service to scale back down to 1 replica")
            wait_until(lambda: sum(r.gpus for r in ops.site("tx-1").runs if r.job_id == job.job_id) == 1, 10, "the site to count 1 GPU for it")
            down_at = time.monotonic() + 3  # the surplus replicas drain and stop
            wait_until(lambda: len(load_since := quiet.since(down_at)) >= 5 and load_since, 30, "requests after the scale-down")
            assert len(replicas_answering(quiet, down_at)) == 1
        finally:
            quiet.stop()
            quiet.join(15)
        assert all(r.ok for r in quiet.results), [r for r in quiet.results if not r.ok][:3]

    finally:  # never leave the service on tx-1 for the tests after this one
        if acme.get(job.job_id).state not in (S.JOB_STATE_CANCELLED, S.JOB_STATE_FAILED, S.JOB_STATE_SUCCEEDED):
            acme.cancel(job.job_id)
        ray_system.wait_state(acme, job.job_id, S.JOB_STATE_CANCELLED, timeout_s=30)
