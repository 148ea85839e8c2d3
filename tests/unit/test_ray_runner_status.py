"""RayRunner's reading of a Ray job as a run: a run Ray failed because the node its
driver ran on died is reported lost (UNKNOWN: the scheduler requeues it within its
retries), not failed (the run's own fault: no retry). No Ray cluster: Ray's JobDetails
and node listing are stood in for by objects with the same fields."""

from __future__ import annotations

from types import SimpleNamespace

from ray.job_submission import JobStatus

from agents.ray_runner import RayRunner
from scheduler.core.runs import RunState


def runner_with_nodes(*alive: str) -> RayRunner:
    runner = RayRunner("http://127.0.0.1:1", "us-1")
    runner._nodes = lambda: [SimpleNamespace(node_id=n, state="ALIVE", resources_total={"GPU": 8}) for n in alive] + [
        SimpleNamespace(node_id="dead", state="DEAD", resources_total={"GPU": 8})
    ]
    return runner


def info(status, node="n1", message=""):
    return SimpleNamespace(status=status, driver_node_id=node, message=message)


def test_a_run_failed_with_its_node_dead_is_lost_not_failed():
    runner = runner_with_nodes("n1")
    lost = runner._status_of("j-r1", info(JobStatus.FAILED, node="dead", message="Job supervisor actor died"))
    assert lost.state == RunState.UNKNOWN and lost.message.startswith("lost with its node dead, which died")
    own = runner._status_of("j-r1", info(JobStatus.FAILED, node="n1", message="exit code 3"))
    assert (own.state, own.message) == (RunState.FAILED, "exit code 3")
    assert runner._status_of("j-r1", info(JobStatus.RUNNING, node="dead")).state == RunState.RUNNING


def test_inventory_counts_only_alive_nodes():
    assert [n.node_id for n in runner_with_nodes("n1", "n2").inventory()] == ["n1", "n2"]
