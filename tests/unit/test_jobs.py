"""The job state machine: the transition table is the only way states change."""

import itertools

import pytest

from scheduler.core.errors import IllegalTransition
from scheduler.core.jobs import ACTIVE, TERMINAL, TRANSITIONS, JobState, can_transition, parse_run_id, run_id_for, transition
from tests.builders import a_job

S = JobState
EXPECTED_LEGAL = {
    (S.PENDING, S.SCHEDULED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.FAILED),
    (S.SCHEDULED, S.STARTING),
    (S.SCHEDULED, S.RUNNING),
    (S.SCHEDULED, S.SUCCEEDED),
    (S.SCHEDULED, S.FAILED),
    (S.SCHEDULED, S.CANCELLING),
    (S.SCHEDULED, S.PENDING),
    (S.SCHEDULED, S.PREEMPTED),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.SUCCEEDED),
    (S.STARTING, S.FAILED),
    (S.STARTING, S.CANCELLING),
    (S.STARTING, S.PENDING),
    (S.STARTING, S.PREEMPTED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLING),
    (S.RUNNING, S.PREEMPTED),
    (S.RUNNING, S.PENDING),
    (S.CANCELLING, S.CANCELLED),
    (S.CANCELLING, S.SUCCEEDED),
    (S.CANCELLING, S.FAILED),
    (S.PREEMPTED, S.PENDING),
    (S.PREEMPTED, S.CANCELLED),
}


def test_transition_table_is_exactly_the_documented_one():
    legal = {(a, b) for a, b in itertools.product(S, S) if can_transition(a, b)}
    assert legal == EXPECTED_LEGAL
    assert set(TRANSITIONS) == set(S)


def test_terminal_states_have_no_way_out():
    assert TERMINAL == {S.SUCCEEDED, S.FAILED, S.CANCELLED}
    assert not ACTIVE & TERMINAL


@pytest.mark.parametrize("source,target", [(a, b) for a, b in itertools.product(S, S) if (a, b) not in EXPECTED_LEGAL])
def test_every_illegal_transition_is_refused(source, target):
    job = a_job().build()
    job = job.__class__(**{**job.__dict__, "state": source})
    with pytest.raises(IllegalTransition):
        transition(job, target, "because", now=1.0)


def test_transition_records_an_event_with_reason_and_clears_pending_reason():
    job = a_job().build()
    assert job.state == S.PENDING and job.pending_reason
    scheduled, event = transition(job, S.SCHEDULED, "placed on us-1", now=5.0, site_id="us-1", attempt=1)
    assert scheduled.state == S.SCHEDULED and scheduled.site_id == "us-1" and scheduled.updated_at == 5.0
    assert scheduled.pending_reason == ""
    assert (event.from_state, event.to_state, event.reason, event.run_id, event.site_id) == (
        S.PENDING,
        S.SCHEDULED,
        "placed on us-1",
        f"{job.job_id}-r1",
        "us-1",
    )


def test_a_transition_needs_a_reason():
    with pytest.raises(ValueError):
        transition(a_job().build(), S.SCHEDULED, "", now=0.0)


def test_run_ids_round_trip_and_reject_foreign_ids():
    assert parse_run_id(run_id_for("job-abc-r", 12)) == ("job-abc-r", 12)
    for foreign in ("raysubmit_123", "job-1", "job-1-rx", "-r3"):
        with pytest.raises(ValueError):
            parse_run_id(foreign)


def test_amend_makes_the_version_replace_makes_and_carries_nothing_cached():
    import dataclasses

    import pytest

    from scheduler.core.jobs import amend
    from scheduler.core.ledger import claim_for

    job = a_job().inference(replicas=2, gpus=4).build()
    claim_for(job)  # cached on this version
    changed = amend(job, requests_per_s=12.5, power_fraction=0.5)
    assert changed == dataclasses.replace(job, requests_per_s=12.5, power_fraction=0.5)
    assert claim_for(changed).power_fraction == 0.5 and claim_for(job).power_fraction == 1.0
    with pytest.raises(TypeError, match="no field"):
        amend(job, requests=1.0)
