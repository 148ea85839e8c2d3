"""Shared real infrastructure for integration tests.

`ray_system`: ONE local Ray cluster per test session (a node per site with virtual
GPUs), the scheduler and three site agents as subprocesses on loopback. us-1 and
eu-1 do not manage power; tx-1 (region tx) does: a grid cap, air cooling and two
fleets of emulated Braiins OS miners (2 s ramps) that its agent drives through
pyasic_rs from Ray actors, so the whole power loop runs end to end on real ports.
`bare_scheduler`: a scheduler with no sites and no Ray, for API behaviour.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

# Ray fixes its auth mode when first imported: set it before any test module imports ray.
_TOKEN_FILE = Path(tempfile.mkdtemp(prefix="pp-ray-auth-")) / "token"
_TOKEN_FILE.write_text(secrets.token_hex(32))
os.environ.setdefault("RAY_AUTH_TOKEN_PATH", str(_TOKEN_FILE))
os.environ["RAY_AUTH_MODE"] = "token"

import grpc
import pytest

from powerplane_dev.cluster import LocalCluster, SitePowerSpec, SiteSpec, can_host_miners, emulated_fleet
from scheduler.api.v1 import types_pb2
from scheduler.client import Client
from tests.postgres import postgres_dsn, postgres_server  # noqa: F401 (the fail-over test's PostgreSQL)

TERMINAL = {types_pb2.JOB_STATE_SUCCEEDED, types_pb2.JOB_STATE_FAILED, types_pb2.JOB_STATE_CANCELLED}


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll `check` until it returns something true (returned), or fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


def skip_unless_port_80_bindable(address: str) -> None:
    """Skip the calling test module where emulated miners cannot listen on port 80 (not root)."""
    if not can_host_miners(address):
        pytest.skip("binding port 80 needs root or CAP_NET_BIND_SERVICE", allow_module_level=True)


TX_POWER = SitePowerSpec(
    interconnect_cap_mw=0.060,  # 60 kW at the meter: 8 GPUs and 20 miners
    cooling="air",
    gpu_load_w=1000,
    gpu_idle_w=150,
    market_node="HB_WEST",
    # 20 emulated Braiins OS miners (agents/emulator) on 127.40.x.y, in racks of 5: each rack
    # is a Ray actor driving its miners through pyasic_rs.
    fleets=(
        emulated_fleet("s19", "S19XP", 10, "127.40.0.1", group_size=5, ramp_down_s=2, ramp_up_s=2),
        emulated_fleet("s21", "S21", 10, "127.40.1.1", group_size=5, ramp_down_s=2, ramp_up_s=2),
    ),
)


class System:
    """A running LocalCluster plus ready clients."""

    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        self.acme = Client(cluster.scheduler_target, cluster.tenant_token("acme"))
        self.globex = Client(cluster.scheduler_target, cluster.tenant_token("globex"))
        self.ops = Client(cluster.scheduler_target, cluster.operator_token)

    def wait_state(self, client: Client, job_id: str, states, timeout_s: float = 60.0) -> types_pb2.Job:
        states = {states} if isinstance(states, int) else set(states)
        deadline = time.monotonic() + timeout_s
        job = None
        while time.monotonic() < deadline:
            try:
                job = client.get(job_id)
            except grpc.RpcError as err:  # the scheduler may be restarting
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(0.2)
                continue
            if job.state in states:
                return job
            if job.state in TERMINAL:
                break
            time.sleep(0.1)
        names = [types_pb2.JobState.Name(s) for s in states]
        raise AssertionError(f"job {job_id} did not reach {names}; last: {job}\n--- scheduler log:\n{self.cluster.scheduler.tail(40)}")

    def events(self, client: Client, job_id: str) -> list[types_pb2.JobEvent]:
        """All of a job's events so far (the watch is cut off once the backlog is read)."""
        stream = client.watch(0, job_id, timeout_s=2.0)
        found = []
        try:
            for event in stream:
                found.append(event)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        return found

    def close(self) -> None:
        for client in (self.acme, self.globex, self.ops):
            client.close()


@pytest.fixture(scope="session")
def ray_system(tmp_path_factory):
    cluster = LocalCluster(
        tmp_path_factory.mktemp("ray-system"),
        [SiteSpec("us-1", "us", gpus=8), SiteSpec("eu-1", "eu", gpus=8), SiteSpec("tx-1", "tx", gpus=8, power=TX_POWER)],
        regions=("us", "eu", "tx"),
        site_timeout_s=12.0,
        heartbeat_interval_s=1.0,
        # Test-speed mining: no dwell times, cap limits planned 2 s + the ramp ahead.
        # Serve services scale down after 4 s of low demand (tests/integration/test_inference_serve.py).
        scheduler_settings={"mining": {"min_on_s": 0, "min_off_s": 0}, "cap_lead_s": 2.0, "power_interval_s": 0.5, "serve_cooldown_s": 4.0},
    )
    try:
        cluster.start_ray()
        cluster.start_scheduler()
        cluster.start_miner_emulators()
        cluster.start_agents()
        system = System(cluster)
        cluster.wait_sites_ready(system.ops)
        yield system
        system.close()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def bare_scheduler(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("bare"), [], site_timeout_s=8.0, heartbeat_interval_s=1.0)
    try:
        cluster.start_scheduler()
        system = System(cluster)
        yield system
        system.close()
    finally:
        cluster.stop()
