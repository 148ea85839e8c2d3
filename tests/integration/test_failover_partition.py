"""A network partition between the leader and PostgreSQL: the leader runs in a network
namespace of its own, joined to the test's by a veth pair, and reaches the database over it;
the standby reaches it over loopback. Bringing the veth down cuts the leader off: it must
step down (stop serving and exit 1) before its lease can run out, and the standby takes the
lease after that, never before.

Needs root (`ip netns`, veth) and Debian's PostgreSQL; skips, saying why, without them."""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import datetime

import psycopg
import pytest
import yaml
from grpc_health.v1 import health_pb2

from powerplane_dev.cluster import SchedulerReplica, free_port
from tests.integration.conftest import wait_until
from tests.postgres import USER, start_postgres

pytestmark = pytest.mark.integration
NET = "10.77.1"
LEASE = {"lease_ttl_s": 4.0, "renew_every_s": 0.5, "step_down_margin_s": 1.5}
TOKENS = {"tenants": {"acme": "acme-" + "a" * 24}, "operators": {}, "sites": {}}


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@pytest.fixture
def leader_namespace():
    """A network namespace for the leader, joined to this one by a veth pair: NET.1 here, NET.2 there."""
    ns, here, there = f"ppa{os.getpid()}", f"ppv{os.getpid() % 100000}a", f"ppv{os.getpid() % 100000}b"
    try:
        ip("netns", "add", ns)
    except (RuntimeError, FileNotFoundError) as err:
        pytest.skip(f"cannot make a network namespace here (needs root and iproute2): {err}")
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", ns)
        ip("addr", "add", f"{NET}.1/24", "dev", here)
        ip("link", "set", here, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{NET}.2/24", "dev", there)
        ip("netns", "exec", ns, "ip", "link", "set", there, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, here
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def database(leader_namespace):
    """A PostgreSQL of this test's own, listening on loopback and on the veth."""
    server_run = start_postgres(also_listen=f"{NET}.1", trust_net=f"{NET}.0/24")
    server = next(server_run)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE failover")
    try:
        yield server
    finally:
        next(server_run, None)


def logged_at(log_text: str, pattern: str) -> float:
    """The time of the first log line matching `pattern` (the scheduler logs local time)."""
    for line in log_text.splitlines():
        if re.search(pattern, line):
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"no log line matches {pattern!r}:\n{log_text[-3000:]}")


def test_a_leader_cut_off_from_its_database_steps_down_before_the_standby_takes_over(tmp_path, leader_namespace, database):
    ns, veth = leader_namespace
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump(TOKENS))
    a_dsn = f"host={NET}.1 port={database.port} user={USER} dbname=failover"
    replica_a = SchedulerReplica(tmp_path, "a", LEASE, listen=f"{NET}.2:{free_port()}", dsn=a_dsn, wrap=("ip", "netns", "exec", ns))  # behind the veth
    replica_b = SchedulerReplica(tmp_path, "b", LEASE, dsn=database.dsn("failover"))
    a, b = replica_a.process, replica_b.process
    try:
        a.start()
        wait_until(lambda: replica_a.health() == health_pb2.HealthCheckResponse.SERVING, 60, "replica a leading")
        b.start()
        wait_until(lambda: replica_b.health() == health_pb2.HealthCheckResponse.NOT_SERVING, 60, "replica b standing by")

        ip("link", "set", veth, "down")  # the partition: a can no longer reach the database (nor we a)
        wait_until(lambda: replica_b.health() == health_pb2.HealthCheckResponse.SERVING, 60, "replica b leading")
        deadline = time.monotonic() + 60
        while a.alive and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not a.alive and a.popen.returncode == 1, "the cut-off leader did not exit 1"
        a_log, b_log = a.log_path.read_text(), b.log_path.read_text()
        stepped_down = logged_at(a_log, r"stepping down as leader")
        took_over = logged_at(b_log, r"leading now \(epoch 2\)")
        assert stepped_down < took_over, f"a stepped down at {stepped_down}, b took over at {took_over}"
        assert "no renewal confirmed" in a_log
    finally:
        a.kill()
        b.kill()
