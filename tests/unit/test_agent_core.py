"""The agent's core works on plain types: protobuf is converted once, at the session
boundary (agents/wire.py, used by agents/session.py); what the agent sends reads back
on the scheduler's side as what it meant; run states and job specs are the core's."""

import ast
import re
from pathlib import Path

import pytest

from agents import wire
from agents.run_records import RunStart, is_active
from scheduler.api.convert import run_report_from_proto, spec_to_proto
from scheduler.api.v1 import agent_pb2
from scheduler.core.decisions import CapRunPower, ScaleRun, SetMiningTargets, StopRun
from scheduler.core.jobs import JobKind, JobSpec, Resources
from scheduler.core.runs import RUN_ACTIVE, RunProgress, RunReport, RunState, ServeLoad

AGENTS = Path(__file__).resolve().parents[2] / "agents"
BOUNDARY = {"agents/wire.py", "agents/session.py"}
WIRE_MODULES = ("google.protobuf", "grpc", "scheduler.api")
WIRE_STATE = re.compile(r"RUN_STATE_(STARTING|RUNNING|SUCCEEDED|FAILED|STOPPED|UNKNOWN)")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_session_boundary_imports_protobuf_grpc_or_the_wire_api():
    wired = {
        path.relative_to(AGENTS.parent).as_posix()
        for path in AGENTS.rglob("*.py")
        if any(name == m or name.startswith(m + ".") for name in imported_modules(path) for m in WIRE_MODULES)
    }
    assert wired == BOUNDARY


def test_no_agent_module_names_the_wire_run_states():
    """Active run states are the core's RUN_ACTIVE; the wire's enum is for the boundary."""
    for path in AGENTS.rglob("*.py"):
        if path.relative_to(AGENTS.parent).as_posix() not in BOUNDARY:
            assert not WIRE_STATE.search(path.read_text()), path


def test_active_is_the_cores_definition():
    assert {s for s in RunState if is_active(RunReport("r", s))} == RUN_ACTIVE


@pytest.mark.parametrize(
    "report",
    [
        RunReport("j-r1", RunState.RUNNING),
        RunReport("j-r1", RunState.FAILED, "exit code 3"),
        RunReport("j-r1", RunState.RUNNING, progress=RunProgress(12, 1_700_000_001.5, 10, 1_700_000_000.0)),
        RunReport("j-r1", RunState.RUNNING, progress=RunProgress(3, 1_700_000_001.0, 0, 0.0)),
        RunReport("j-r2", RunState.RUNNING, serve=ServeLoad(12.5, 3, "http://127.0.0.1:8000/j")),
    ],
)
def test_a_report_the_agent_sends_reads_back_on_the_scheduler_as_itself(report):
    sent = wire.report_to_proto(report, checkpoint_uri="file:///ckpt" if report.progress else "")
    assert run_report_from_proto(sent) == report
    if report.progress is not None:
        assert sent.checkpoint.uri == "file:///ckpt"


def test_orders_arrive_as_the_cores_order_types():
    spec = JobSpec(JobKind.INFERENCE, "serve", Resources(gpus=2), serve_import_path="m:app", min_replicas=2, max_replicas=4)
    start = wire.start_from_proto(agent_pb2.StartRun(run_id="j-r1", job_id="j", tenant="acme", spec=spec_to_proto(spec), checkpoint_uri="", replicas=3))
    assert start == RunStart("j-r1", "j", "acme", spec, "", 3)
    assert wire.stop_from_proto("s", agent_pb2.StopRun(run_id="j-r1", reason="cut", checkpoint_grace_s=30)) == StopRun("s", "j-r1", "cut", 30)
    targets = agent_pb2.PowerTargets(fleets=[agent_pb2.FleetPower(fleet_id="a", target_w=5.0)], cap_w=9.0, cap_event_active=True, cause="c")
    assert wire.targets_from_proto("s", targets) == SetMiningTargets("s", {"a": 5.0}, 9.0, True, "c")
    assert wire.power_cap_from_proto("s", agent_pb2.RunPowerCap(run_id="j-r1", power_fraction=0.7, cause="c")) == CapRunPower("s", "j-r1", 0.7, "c")
    assert wire.scale_from_proto("s", agent_pb2.ScaleRun(run_id="j-r1", replicas=2, cause="c")) == ScaleRun("s", "j-r1", 2, "c")


def test_a_runs_gpus_follow_the_cores_job_spec():
    training = JobSpec(JobKind.TRAINING, "train", Resources(gpus=4), replicas=1)
    batch = JobSpec(JobKind.INFERENCE, "infer", Resources(gpus=2), replicas=3)
    served = JobSpec(JobKind.INFERENCE, "serve", Resources(gpus=2), serve_import_path="m:app", min_replicas=2, max_replicas=5)
    assert RunStart("t-r1", "t", "a", training).gpus == 4
    assert RunStart("b-r1", "b", "a", batch).gpus == 6  # plain inference: every replica
    assert RunStart("s-r1", "s", "a", served).gpus == 4  # Serve: its fewest replicas
    assert RunStart("s-r1", "s", "a", served, replicas=3).gpus == 6  # or what the order says
