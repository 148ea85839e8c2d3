"""Fail-over between two scheduler replicas fenced in one database (a real PostgreSQL
started for the session, tests/postgres.py, and one SQLite file on this machine): one leads, the other stands by
and refuses every call UNAVAILABLE naming the leader; kill -9 the leader while 8 clients
submit, and the standby takes the lease once it runs out, loads the store and serves.
Every acknowledged job is there afterwards, no request id has two jobs, and the clients,
given both addresses, carry on by themselves."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2

from powerplane_dev.cluster import SchedulerReplica
from scheduler.api.leader import leader_hint
from scheduler.api.v1 import tenant_pb2, tenant_pb2_grpc
from scheduler.client import Client, channel, spec
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration
TOKENS = {"tenants": {"acme": "acme-" + "a" * 24}, "operators": {"ops": "ops-" + "o" * 24}, "sites": {}}
LEASE = {"lease_ttl_s": 3.0, "renew_every_s": 0.5, "step_down_margin_s": 1.0}


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(request, tmp_path):
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump(TOKENS))
    started = []
    for name in ("a", "b"):
        # The config's advertise is wrong on purpose: $POWERPLANE_ADVERTISE (as the chart sets it from the pod's IP) must win.
        started.append(SchedulerReplica(tmp_path, name, {**LEASE, "advertise": "127.0.0.1:1"}, dsn=dsn))
    try:
        yield started
    finally:
        for replica in started:
            replica.process.kill()


def serving(replica: SchedulerReplica) -> bool:
    return replica.health() == health_pb2.HealthCheckResponse.SERVING


def test_the_standby_names_the_leader_then_takes_over_when_it_is_killed_and_nothing_acknowledged_is_lost(replicas):
    a, b = replicas
    a.process.start()
    wait_until(lambda: serving(a), 60, "replica a leading")
    b.process.start()
    wait_until(lambda: b.health() == health_pb2.HealthCheckResponse.NOT_SERVING, 60, "replica b standing by")

    with channel(b.address) as raw:  # a plain stub: no following
        stub = tenant_pb2_grpc.TenantServiceStub(raw)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetJob(tenant_pb2.GetJobRequest(job_id="x"), metadata=(("authorization", f"Bearer {TOKENS['tenants']['acme']}"),), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and leader_hint(refused.value) == a.address

    acknowledged: dict[str, str] = {}  # client_request_id -> job_id
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[str] = []

    def submitter(n: int) -> None:
        with Client(f"{a.address},{b.address}", TOKENS["tenants"]["acme"], timeout_s=5) as client:
            i = 0
            while not stop.is_set():
                request_id = f"c{n}-{i}"
                deadline = time.monotonic() + 60
                while True:  # the same request id until it is acknowledged: retries are idempotent
                    try:
                        job = client.submit(spec("python train.py", gpus=1, allowed_regions=["us"]), client_request_id=request_id).job
                        break
                    except grpc.RpcError as err:
                        if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                            failures.append(f"{request_id}: {err.code().name} {err.details()}")
                            return
                        time.sleep(0.2)
                with lock:
                    acknowledged[request_id] = job.job_id
                i += 1

    threads = [threading.Thread(target=submitter, args=(n,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= 40, 60, "submissions on the first leader")
    killed_at = time.monotonic()
    a.process.kill()
    wait_until(lambda: serving(b), 60, "replica b leading")
    took_over_s = time.monotonic() - killed_at
    before = len(acknowledged)
    wait_until(lambda: len(acknowledged) >= before + 40, 60, "submissions on the new leader")
    stop.set()
    for thread in threads:
        thread.join(70)
    assert not failures, failures

    with Client(b.address, TOKENS["tenants"]["acme"], timeout_s=10) as client:
        stored = list(client.list_all())
    by_request: dict[str, list[str]] = {}
    for job in stored:
        by_request.setdefault(job.client_request_id, []).append(job.job_id)
    assert all(len(ids) == 1 for ids in by_request.values()), "a request id with two jobs"
    missing = {r for r in acknowledged if r not in by_request}
    assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
    assert all(by_request[r] == [j] for r, j in acknowledged.items())
    assert took_over_s < LEASE["lease_ttl_s"] + 10, took_over_s


def test_a_leader_stopped_on_purpose_hands_over_at_once(tmp_path):
    """SIGTERM (a rolling update): the leader lets its lease go after its last commit, so the
    standby leads at its next try; with a 60 s lease nothing else could make it lead sooner."""
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump(TOKENS))
    long_lease = {"lease_ttl_s": 60.0, "renew_every_s": 0.5, "step_down_margin_s": 2.0}
    a, b = (SchedulerReplica(tmp_path, name, long_lease) for name in ("a", "b"))
    try:
        a.process.start()
        wait_until(lambda: serving(a), 60, "replica a leading")
        b.process.start()
        wait_until(lambda: b.health() == health_pb2.HealthCheckResponse.NOT_SERVING, 60, "replica b standing by")
        a.process.terminate()
        wait_until(lambda: serving(b), 30, "replica b leading well before a's 60 s lease could run out")
        assert "lease released" in a.process.log_path.read_text()
    finally:
        a.process.kill()
        b.process.kill()
