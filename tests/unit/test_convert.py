"""The one module that maps protobuf to core types: round trips and defaults.

Every JobSpec field round-trips: `job_specs()` draws valid specs with a strategy per
field (`SPEC_FIELDS`, `RESOURCE_FIELDS`), and a field of the dataclasses without one,
or one that never leaves its default, fails `test_the_strategy_covers_every_field`."""

import dataclasses

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from scheduler.api import convert
from scheduler.api.v1 import agent_pb2, types_pb2
from scheduler.core import validation as v
from scheduler.core.errors import InvalidArgument
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.runs import RunState
from scheduler.core.sites import GpuNode
from tests.builders import a_job

REGIONS = frozenset({"eu", "us", "ap"})
# Valid UTF-8 (no lone surrogates), no NUL: what a client can send in a proto string.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
TRAINING, INFERENCE = JobKind.TRAINING, JobKind.INFERENCE


def _only(kind: JobKind, strategy, otherwise):
    """`strategy` for jobs of `kind`, `otherwise` (the default) for the rest."""
    return lambda k, served: strategy if k == kind else st.just(otherwise)


def _serve(strategy, otherwise):
    return lambda k, served: strategy if served else st.just(otherwise)


RESOURCE_FIELDS = {
    "gpus": st.integers(1, 64),
    "cpus": st.floats(0, v.MAX_CPUS, allow_nan=False),
    "memory_bytes": st.integers(0, v.MAX_MEMORY),
}
# field -> (kind, served) -> strategy; min/max replicas and target rps are drawn together below.
SPEC_FIELDS = {
    "kind": None,
    "entrypoint": lambda k, served: TEXT.filter(str.strip),
    "resources": lambda k, served: st.builds(Resources, **RESOURCE_FIELDS),
    "name": lambda k, served: TEXT,
    "env": lambda k, served: st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True), TEXT, max_size=4),
    "replicas": lambda k, served: st.integers(1, 16) if k == INFERENCE and not served else st.just(1),
    "priority": lambda k, served: st.integers(*v.PRIORITY_RANGE),
    "allowed_regions": lambda k, served: st.lists(st.sampled_from(sorted(REGIONS)), unique=True).map(tuple),
    "labels": lambda k, served: st.dictionaries(st.from_regex(r"[a-z0-9]([a-z0-9._/-]{0,10}[a-z0-9])?", fullmatch=True), TEXT, max_size=4),
    "max_runtime_s": lambda k, served: st.integers(0, v.MAX_RUNTIME_S),
    "max_retries": lambda k, served: st.integers(0, v.MAX_RETRIES),
    "slowdown_tolerance_pct": _only(TRAINING, st.integers(0, v.MAX_SLOWDOWN_PCT), 0),
    "checkpoint_uri": _only(TRAINING, st.sampled_from(["", "/ckpt/acme", "s3://bucket/prefix", "gs://b/é/ü"]), ""),
    "checkpoint_grace_s": lambda k, served: st.integers(0, v.MAX_CHECKPOINT_GRACE_S),
    "serve_import_path": _serve(st.from_regex(r"[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,8}){0,2}:[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), ""),
    "min_replicas": _serve(st.integers(0, 8), 0),
    "max_replicas": _serve(st.integers(0, 16), 0),
    "target_rps_per_replica": _serve(st.floats(0, v.MAX_RPS_PER_REPLICA, allow_nan=False), 0.0),
}


@st.composite
def job_specs(draw) -> JobSpec:
    """A JobSpec that passes validation, each field drawn from its SPEC_FIELDS strategy."""
    kind = draw(st.sampled_from(JobKind))
    served = kind == INFERENCE and draw(st.booleans())
    fields = {name: draw(strategy(kind, served)) for name, strategy in SPEC_FIELDS.items() if strategy is not None}
    low, high = fields["min_replicas"], fields["max_replicas"]
    if high and high < max(1, low):
        fields["max_replicas"] = max(1, low)  # a range, not an empty one
    if served and fields["max_replicas"] > max(1, low) and fields["target_rps_per_replica"] <= 0:
        fields["target_rps_per_replica"] = 1.5  # a service that scales needs its per-replica demand
    return JobSpec(kind=kind, **fields)


@settings(max_examples=300, deadline=None)
@given(job_specs())
def test_every_spec_field_round_trips(spec):
    v.validate_submission("req-1", spec, REGIONS)  # the strategy draws specs a client may send
    assert convert.spec_from_proto(convert.spec_to_proto(spec)) == spec


@pytest.mark.parametrize(
    "cls, strategies, owner", [(JobSpec, SPEC_FIELDS, lambda s: s), (Resources, RESOURCE_FIELDS, lambda s: s.resources)], ids=["JobSpec", "Resources"]
)
def test_the_strategy_covers_every_field(cls, strategies, owner):
    fields = dataclasses.fields(cls)
    assert set(strategies) == {f.name for f in fields}, "a field without a strategy in SPEC_FIELDS/RESOURCE_FIELDS"
    defaults = cls(JobKind.TRAINING, "x") if cls is JobSpec else cls()
    quick = settings(max_examples=2000, phases=[Phase.generate], database=None, deadline=None)
    for f in fields:
        # Raises NoSuchExample where the strategy never moves the field off its default.
        find(job_specs(), lambda s, name=f.name: getattr(owner(s), name) != getattr(defaults, name), settings=quick)


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
