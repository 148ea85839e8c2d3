"""The Serve runner's own logic without Ray (agents/serve_runner.py): Serve's request
counter read from a Prometheus page, the demand rate over a window, and how Serve's
application details become run statuses (state, replicas held, endpoint) and, after a
restart, this site's runs."""

from __future__ import annotations

import enum

import pytest

from agents.serve_runner import DemandMeter, ServeRunner, load_application, parse_request_counts
from scheduler.core.runs import RunState

PAGE = """# HELP ray_serve_num_http_requests_total The number of HTTP requests processed.
# TYPE ray_serve_num_http_requests_total counter
ray_serve_num_http_requests_total{Component="core_worker",application="job-a-r1",method="POST",route="/job-a",status_code="200"} 120.0
ray_serve_num_http_requests_total{Component="core_worker",application="job-a-r1",method="POST",route="/job-a",status_code="500"} 3.0
ray_serve_num_http_requests_total{Component="core_worker",application="job-b-r2",method="GET",route="/job-b",status_code="200"} 7.0
ray_serve_deployment_request_counter_total{application="job-a-r1",deployment="StandInLLM",replica="x",route="/job-a"} 999.0
"""


def test_request_counts_sum_every_status_per_application():
    assert parse_request_counts(PAGE) == {"job-a-r1": 123.0, "job-b-r2": 7.0}


def test_demand_is_the_counter_increase_over_the_window():
    meter = DemandMeter(window_s=10.0)
    assert meter.add("app", 0.0, 100.0) == 0.0
    assert meter.add("app", 5.0, 150.0) == pytest.approx(10.0)
    assert meter.add("app", 10.0, 200.0) == pytest.approx(10.0)
    assert meter.add("app", 20.0, 220.0) == pytest.approx(2.0)  # the window moved on: only the last 10 s count
    assert meter.add("app", 21.0, 5.0) == 0.0  # the counter restarted: start over, never negative


class Status(str, enum.Enum):  # Serve hands back its enums in the details
    RUNNING = "RUNNING"
    DEPLOYING = "DEPLOYING"


def app(status, target, live, site="powerplane_site_tx-1", route="/job-a"):
    return {
        "status": status,
        "route_prefix": route,
        "message": "",
        "deployment_topology": {"ingress_deployment": "StandInLLM"},
        "deployments": {
            "StandInLLM": {
                "target_num_replicas": target,
                "replicas": [{"state": "RUNNING"}] * live,
                "required_resources": {"CPU": 0, "GPU": 2, site: 0.001},
            }
        },
    }


def runner_with(details: dict, rps: float = 0.0) -> ServeRunner:
    runner = ServeRunner("127.0.0.1:6379", "tx-1", site_resource="powerplane_site_tx-1", http_port=8123)
    runner.details = lambda fresh=False: details
    runner.requests_per_s = lambda run_id: rps
    return runner


def test_a_run_reports_the_replicas_it_holds_its_demand_and_endpoint():
    details = {"http_options": {"host": "127.0.0.1", "port": 8123}, "applications": {"job-a-r1": app(Status.RUNNING, target=1, live=3)}}
    status = runner_with(details, rps=12.5).status("job-a-r1")
    assert status.state == RunState.RUNNING
    assert status.serve.replicas == 3  # target lowered to 1, two replicas still stopping: it holds 3
    assert status.serve.requests_per_s == 12.5 and status.serve.endpoint == "http://127.0.0.1:8123/job-a"
    growing = runner_with({"applications": {"job-a-r1": app("RUNNING", target=3, live=1)}}).status("job-a-r1")
    assert growing.serve.replicas == 3  # its target counts at once


def test_states_deploying_deleted_and_unknown():
    runner = runner_with({"applications": {"job-a-r1": app(Status.DEPLOYING, 1, 0)}})
    assert runner.status("job-a-r1").state == RunState.STARTING
    empty = runner_with({"applications": {}})
    empty._deploying.add("job-b-r1")
    empty._deleted.add("job-c-r1")
    assert empty.status("job-b-r1").state == RunState.STARTING  # deploy under way, not listed yet
    assert empty.status("job-c-r1").state == RunState.STOPPED
    assert empty.status("job-d-r1").state == RunState.UNKNOWN


def test_after_a_restart_the_agent_finds_only_its_sites_serve_runs():
    applications = {
        "job-a-r1": app("RUNNING", 2, 2),
        "job-b-r3": app("RUNNING", 1, 1, site="powerplane_site_eu-1"),  # another site's
        "someone-elses-app": app("RUNNING", 1, 1),  # not a run id
    }
    records = runner_with({"applications": applications}).list_runs()
    assert [(r.status.run_id, r.status.serve.replicas, r.gpus) for r in records] == [("job-a-r1", 2, 4)]


def test_an_import_path_must_name_a_serve_application():
    with pytest.raises(ValueError, match="module:attribute"):
        load_application("no_colon")
    with pytest.raises(ValueError, match="not a Serve application"):
        load_application("examples.inference.load:__doc__")
    assert load_application("examples.inference.service:app") is not None
