"""The one module that maps protobuf to core types: round trips and defaults."""

import pytest

from scheduler.api import convert
from scheduler.api.v1 import agent_pb2, types_pb2
from scheduler.core.errors import InvalidArgument
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunState
from scheduler.core.sites import GpuNode
from tests.builders import a_job


def test_spec_round_trips():
    spec = JobSpec(
        kind=JobKind.INFERENCE,
        entrypoint="serve --port 8000",
        resources=Resources(gpus=2, cpus=4.5, memory_bytes=1 << 34),
        name="llama",
        env={"A": "1"},
        replicas=3,
        priority=-5,
        allowed_regions=("eu", "us"),
        labels={"team": "nlp"},
        max_runtime_s=3600,
        max_retries=0,
    )
    assert convert.spec_from_proto(convert.spec_to_proto(spec)) == spec


def test_defaults_for_unset_fields():
    spec = convert.spec_from_proto(types_pb2.JobSpec(kind=types_pb2.JOB_KIND_TRAINING, entrypoint="x"))
    assert spec.replicas == 1 and spec.max_retries == convert.DEFAULT_MAX_RETRIES
    assert convert.spec_from_proto(types_pb2.JobSpec(kind=1, entrypoint="x", max_retries=0)).max_retries == 0


def test_unspecified_kind_is_invalid():
    with pytest.raises(InvalidArgument, match="spec.kind"):
        convert.spec_from_proto(types_pb2.JobSpec(entrypoint="x"))


def test_enum_numbers_agree_on_both_sides():
    for state in JobState:
        assert types_pb2.JobState.Name(state.value) == f"JOB_STATE_{state.name}"
    for state in RunState:
        assert agent_pb2.RunState.Name(state.value) == f"RUN_STATE_{state.name}"


def test_job_and_inventory_to_proto():
    job = a_job().on("us-1", JobState.RUNNING, attempt=2).build()
    msg = convert.job_to_proto(job)
    assert (msg.job_id, msg.state, msg.site_id, msg.run_id, msg.attempt) == (job.job_id, types_pb2.JOB_STATE_RUNNING, "us-1", f"{job.job_id}-r2", 2)
    nodes = (GpuNode("n1", "H100", 8, 64.0, 1 << 40),)
    assert convert.inventory_from_proto(convert.inventory_to_proto(nodes)) == nodes


def test_unknown_run_state_from_an_agent_is_invalid():
    with pytest.raises(InvalidArgument):
        convert.run_report_from_proto(agent_pb2.RunStatus(run_id="j-r1", state=42))
