"""Fail-over with the whole system running: kill -9 the leading scheduler replica in the
middle of 8 concurrent submitters, a running training job and an active cap cut
(powerplane_dev/failover_drill.py: two replicas on the session's real PostgreSQL, one
Ray node for a power-managed site with 4 virtual GPUs and 4 emulated Braiins OS miners,
its agent given both replicas' addresses). Afterwards every acknowledged job is there
(in the database itself and in the new leader's ListJobs), no client request id has two
jobs, no job was started twice on Ray, the agent's metered power never went over the
cut, from before the kill until the training ended, the agent is connected to the new
leader, and the training job succeeded in one run. One kill: test_failover.py repeats
kills without agents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from powerplane_dev.failover_drill import CUT_W, SITE_ID, FailoverDrill
from scheduler.api.v1 import operator_pb2, types_pb2
from tests.integration.conftest import skip_unless_port_80_bindable

pytestmark = pytest.mark.integration
LEASE = {"lease_ttl_s": 3.0, "renew_every_s": 0.5, "step_down_margin_s": 1.0}
MINERS = "127.41.0.1"
STEPS, EVERY = 120, 15


@pytest.fixture
def drill(postgres_dsn, tmp_path):
    skip_unless_port_80_bindable(MINERS)
    drill = FailoverDrill(tmp_path, postgres_dsn, LEASE, miners_base=MINERS)
    try:
        drill.start()
        yield drill
    finally:
        drill.stop()


def test_killing_the_leader_mid_work_loses_no_job_runs_nothing_twice_and_keeps_the_cap(drill):
    cut_at = drill.cut_cap()
    done = drill.run_round(1, steps=STEPS, every=EVERY)
    logs = drill.log_tail()
    new_leader = next(r for r in drill.cluster.replicas if r.name == done.leader)
    assert done.killed != done.leader and not next(r for r in drill.cluster.replicas if r.name == done.killed).process.alive
    assert done.takeover_s < LEASE["lease_ttl_s"] + 10, done

    # The training job was running across the kill and finished in its one run.
    training = drill.job(done.training_job)
    assert done.training_step_at_kill < STEPS, "the training job had already finished when the leader was killed"
    assert training.state == types_pb2.JOB_STATE_SUCCEEDED, f"{training}\n{logs}"
    assert (training.attempt, training.preemptions) == (1, 0)
    directory = Path(training.checkpoint.uri)
    assert len((directory / "history.jsonl").read_text().splitlines()) == 1, "the training program was started more than once"
    assert json.loads((directory / "result.json").read_text())["steps"] == STEPS

    # Every acknowledged request id has exactly its one job: in the jobs table and in the new leader's ListJobs.
    acknowledged = {a.request_id: a.job_id for a in done.submitters.acks}
    assert len(acknowledged) == len(done.submitters.acks) > done.acknowledged_at_kill > 0
    stored, listed = drill.stored_jobs(), drill.listed_jobs(new_leader)
    for name, found in (("the database", stored), ("ListJobs", listed)):
        assert [r for r, jobs in found.items() if len(jobs) > 1] == [], f"request ids with two jobs in {name}"
        lost = {r: j for r, j in acknowledged.items() if found.get(r) != [j]}
        assert not lost, f"acknowledged but not (or not so) in {name}: {sorted(lost.items())[:5]}"

    # No job was started twice: one Ray job (run) per job, and no job moved to a second attempt.
    runs = drill.runs_on_ray()
    assert drill.double_runs() == {}, f"jobs started twice on Ray: {drill.double_runs()}"
    assert [r.submission_id for r in runs[training.job_id]] == [training.run_id]
    # The small jobs for the site: some started by the old leader, some placed by the new one; each ran once.
    small = [a for a in done.submitters.acks if a.runnable]
    for ack in small:
        job = drill.job(ack.job_id)
        assert job.state == types_pb2.JOB_STATE_SUCCEEDED and [r.submission_id for r in runs[job.job_id]] == [job.run_id], f"{job}\n{logs}"
    started = [runs[a.job_id][0].start_time / 1000 for a in small]
    assert min(started) < done.killed_at_wall, "no small job had started on Ray before the kill"
    assert any(a.sent_at > done.killed_at for a in small), "no small job was submitted after the kill"
    moved = [(j.job_id, j.attempt) for j in drill.acme.list_all() if j.attempt > 1 or j.preemptions]
    assert moved == [], f"jobs run again: {moved}"

    # The cap: the agent's metered power, sampled every 0.1 s from the cut in force (before the kill)
    # until the training ended, never above the cap the agent held nor above the cut.
    samples = drill.power_samples()
    cut_off = [s for s in samples if not s.connected]
    assert cut_off, "no sample while the agent was cut off: the samples do not cover the fail-over"
    after = [s for s in samples if s.at > cut_off[-1].at]
    assert samples[0].at >= cut_at and samples[0].at < cut_off[0].at and len(after) >= 10
    assert max(b.at - a.at for a, b in zip(samples, samples[1:])) < 5.0, "a gap of more than 5 s in the samples"
    assert drill.cap_exceeded() == [], f"metered power over the cap: {drill.cap_exceeded()[:5]}"
    assert max(s.cap_w for s in samples) <= CUT_W + 1.0, "the agent was given a cap above the cut while it was in force"

    # The cut is still in force on the new leader and was met by curtailing mining.
    cut = drill.cut_status()
    assert cut.state == operator_pb2.GRID_EVENT_STATE_ACTIVE
    assert any(line.split(" ", 2)[1] == "curtail" for line in cut.response), list(cut.response)

    # The agent follows the new leader: its site READY there (run_round waited for it), and its stream up.
    assert drill.ops.site(SITE_ID).site.state == types_pb2.SITE_STATE_READY
    assert samples[-1].connected
    assert done.agents_reconnected_s < 30, done
