"""Power end to end through real gRPC, the real scheduler, a real site agent with
emulated miner fleets, and Ray: grid cap cuts posted over OperatorService are met
mining first, then by power-capping training, then by preempting it (requeued);
inference is untouched; the agent's reported meter power never exceeds a cap in
force; when the cut ends, AI gets its power back first and mining refills."""

from __future__ import annotations

import threading
import time

import pytest

from scheduler.api.v1 import operator_pb2, types_pb2
from scheduler.client import Client, spec
from tests.integration.conftest import wait_until
from tests.integration.helpers import cap_cut

pytestmark = pytest.mark.integration
S = types_pb2
SLEEP = "python -c 'import time; time.sleep({})'"
LEAD_S = 5.0  # posted this far ahead: more than the scheduler plans ahead (2 s ramp + 2 s)
READING_SLACK_S = 1.5  # a reading is at most one heartbeat (1 s) old


class MeterWatch:
    """Samples tx-1's reported meter power and the cap over gRPC, in a thread."""

    def __init__(self, system):
        self.client = Client(system.cluster.scheduler_target, system.cluster.operator_token)
        self.samples: list[tuple[float, float, bool]] = []  # (time, meter W, site power known)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            site = self.client.site("tx-1").site
            self.samples.append((time.time(), site.power.measured_w, site.HasField("power")))
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.client.close()

    def over(self, cap_w: float, start: float, end: float) -> list[tuple[float, float]]:
        return [(t, w) for t, w, _ in self.samples if start + READING_SLACK_S <= t < end and w > cap_w + 1.0]


def grid_log(ops) -> list[tuple]:
    """tx-1's grid events as posted: (event, received_at) each, in the order received."""
    return [(e.event, e.received_at) for e in ops.grid_events(site_id="tx-1").events]


def job_marks(client, jobs) -> dict[str, tuple]:
    """What a job's event log and state say of it: any new event or move changes these."""
    marks = {}
    for job in jobs:
        m = client.get(job.job_id)
        marks[job.job_id] = (m.state, m.reason, m.attempt, m.site_id, m.run_id, m.last_event_id, m.preemptions)
    return marks


def runs_by_job(ops, job_ids):
    return {r.job_id: r for r in ops.site("tx-1").runs if r.job_id in job_ids}


def test_cap_cuts_are_met_mining_first_then_training_inference_untouched(ray_system):
    ops, acme = ray_system.ops, ray_system.acme
    # Until the agent has read its miners it reports them at rated power (the safe figure); wait
    # for real readings of mining filling the cap.
    power = wait_until(lambda: (p := ops.site("tx-1").site.power).mining_w > 40_000 and p.measured_w <= p.cap_w and p, 60, "mining to fill tx-1's cap")
    assert power.cap_w == 60_000

    with MeterWatch(ray_system) as watch:
        inference = acme.submit(spec(SLEEP.format(600), gpus=2, kind=S.JOB_KIND_INFERENCE, allowed_regions=["tx"]), "pwr-infer").job
        training = acme.submit(spec(SLEEP.format(600), gpus=4, allowed_regions=["tx"], slowdown_tolerance_pct=25), "pwr-train").job
        for job in (inference, training):
            ray_system.wait_state(acme, job.job_id, S.JOB_STATE_RUNNING)
        # AI IT load now: 8 GPUs idle (1.2 kW) + 2 x 850 W + 4 x 850 W = 6.3 kW; mining's floor 0.5 kW; x1.1 air.
        ai_and_floor_w = (1200 + 1700 + 3400 + 500) * 1.1

        # Cut 1: a little under AI + mining's floor: mining goes to its floor, training is power-capped.
        start1 = time.time() + LEAD_S
        end = start1 + 30  # both cuts end together
        cap1 = ai_and_floor_w - 600
        ops.post_grid_event(cap_cut("cut-1", cap1, start1, end))
        capped = wait_until(
            lambda: (r := runs_by_job(ops, {training.job_id})).get(training.job_id) and r[training.job_id].power_fraction < 1.0 and r,
            20,
            "training power-capped",
        )
        assert 0.70 <= capped[training.job_id].power_fraction < 1.0
        # The cap went through the agent's NVML (the fake device here): its power readings follow the
        # new limit of training's 4 GPUs (idle GPUs + inference at load + training at fraction x load).
        fraction = capped[training.job_id].power_fraction
        capped_ai_w = (8 * 150 + 2 * 850 + 4 * (1000 * fraction - 150)) * 1.1
        wait_until(lambda: abs(ops.site("tx-1").site.power.ai_w - capped_ai_w) < 50, 15, f"NVML readings of {capped_ai_w:.0f} W of AI power")
        wait_until(lambda: time.time() > start1 + 2 * READING_SLACK_S, 30, "cut 1 in force")

        # Cut 2 (tighter): training is preempted and requeued; it cannot fit anywhere in region tx.
        start2 = time.time() + LEAD_S
        end2 = end
        cap2 = (1200 + 1700 + 500) * 1.1 + 1000
        ops.post_grid_event(cap_cut("cut-2", cap2, start2, end2))
        requeued = ray_system.wait_state(acme, training.job_id, S.JOB_STATE_PENDING, timeout_s=20)
        assert "preempted" in requeued.reason and "cap limit" in requeued.reason
        states = [S.JobState.Name(e.to_state) for e in ray_system.events(acme, training.job_id)]
        assert states[-2:] == ["JOB_STATE_PREEMPTED", "JOB_STATE_PENDING"]
        untouched = acme.get(inference.job_id)
        assert untouched.state == S.JOB_STATE_RUNNING and untouched.attempt == 1
        assert runs_by_job(ops, {inference.job_id})[inference.job_id].power_fraction == 1.0

        # Posting the same event again changes nothing (idempotent by id): the answer is the record
        # already kept (same event, same received_at), no grid event is added, no job moves.
        grid_before, jobs_before = grid_log(ops), job_marks(acme, (inference, training))
        posted = next(e for e in ops.grid_events(site_id="tx-1").events if e.event.event_id == "cut-2")
        again = ops.post_grid_event(cap_cut("cut-2", cap2, start2, end2))
        assert (again.event, again.received_at) == (posted.event, posted.received_at)
        assert list(again.response)[: len(posted.response)] == list(posted.response)  # the steps taken for it so far, none undone
        assert grid_log(ops) == grid_before
        assert job_marks(acme, (inference, training)) == jobs_before

        wait_until(lambda: time.time() > start2 + 2 * READING_SLACK_S, 30, "cut 2 in force")
        events = {e.event.event_id: e for e in ops.grid_events(site_id="tx-1").events}
        assert events["cut-2"].met and events["cut-2"].state == operator_pb2.GRID_EVENT_STATE_ACTIVE

        # The cuts end: training comes back (AI first), then mining refills the cap.
        rerun = ray_system.wait_state(acme, training.job_id, S.JOB_STATE_RUNNING, timeout_s=60)
        assert rerun.attempt == 2 and time.time() >= end - 1
        wait_until(lambda: ops.site("tx-1").site.power.mining_w > 40_000, 30, "mining to refill the cap")

    # The agent's reported meter power never exceeded a cap in force.
    assert any(known for *_, known in watch.samples)
    assert watch.over(60_000, 0, float("inf")) == []
    assert watch.over(cap1, start1, end) == []
    assert watch.over(cap2, start2, end2) == []

    events = {e.event.event_id: e for e in ops.grid_events(site_id="tx-1").events}
    cut1 = [line.split(" ", 2)[1] for line in events["cut-1"].response]
    assert "curtail" in cut1 and "power-cap" in cut1 and cut1.index("curtail") < cut1.index("power-cap")
    assert any("preempt training" in line and training.job_id in line for line in events["cut-2"].response)
    assert not any("shed inference" in line for e in events.values() for line in e.response)
    assert events["cut-2"].state == operator_pb2.GRID_EVENT_STATE_ENDED

    for job in (inference, training):
        acme.cancel(job.job_id)
        ray_system.wait_state(acme, job.job_id, S.JOB_STATE_CANCELLED)


def test_a_grid_event_for_an_unknown_site_is_refused_with_its_reason(ray_system):
    import grpc

    event = operator_pb2.GridEvent(event_id="nowhere-1", kind=operator_pb2.GRID_EVENT_KIND_CAP_LIMIT, site_id="nowhere", cap_w=1000)
    with pytest.raises(grpc.RpcError) as err:
        ray_system.ops.post_grid_event(event)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nowhere" in err.value.details()
