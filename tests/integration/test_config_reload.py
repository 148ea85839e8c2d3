"""Config reloads through real gRPC (scheduler/server/reload.py, docs/reload.md).

In process, a scheduler started on a config file: a tenant's token A works; the file gets
token B in A's place and ReloadConfig applies it, so B works and A is UNAUTHENTICATED at
once; the new preemption policy is the controller's; a change to `listen` is refused
FAILED_PRECONDITION naming it (nothing applied), a broken file INVALID_ARGUMENT; tenants and
read-only operators may not reload (PERMISSION_DENIED); a standby reloads its own file.
As a process: `powerplane scheduler` reloads its tokens_file on SIGHUP, and `powerplane
admin reload` prints what changed."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
from contextlib import redirect_stderr, redirect_stdout

import grpc
import pytest
import yaml

from powerplane_dev.cluster import LocalCluster
from scheduler.api.v1 import operator_pb2, operator_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from scheduler.cli.main import main as cli
from scheduler.client import Client
from scheduler.core.priority import PreemptionPolicy
from scheduler.server.app import SchedulerServer
from scheduler.server.config import load_config
from scheduler.server.tokens import token_hash
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

A, B = "tenant-a-token-0123456789abcdef", "tenant-b-token-0123456789abcdef"
OPS, READER = "ops-token-0123456789abcdef", "reader-token-0123456789abcdef"
DENIED, UNAUTHENTICATED = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED


def bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


def settings(**more) -> dict:
    return {
        "listen": "127.0.0.1:0",
        "database": "pp.db",
        "regions": ["us"],
        "tenants": {"acme": token_hash(A)},
        "operators": {"ops": token_hash(OPS), "audit": {"token": token_hash(READER), "role": "read_only"}},
        **more,
    }


async def refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details()


def test_reload_config_over_grpc(tmp_path):
    path = tmp_path / "scheduler.yaml"
    path.write_text(yaml.safe_dump(settings()))

    async def main():
        server = SchedulerServer(load_config(path), path)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                tenant, operator = tenant_pb2_grpc.TenantServiceStub(channel), operator_pb2_grpc.OperatorServiceStub(channel)
                jobs = tenant_pb2.ListJobsRequest()
                await tenant.ListJobs(jobs, metadata=bearer(A), timeout=10)
                reload_ = operator_pb2.ReloadConfigRequest()
                assert (await operator.ReloadConfig(reload_, metadata=bearer(OPS), timeout=10)).changed_sections == []

                code, details = await refused(operator.ReloadConfig(reload_, metadata=bearer(A), timeout=10))
                assert code == DENIED and "tenant tokens may not call this service" in details
                code, details = await refused(operator.ReloadConfig(reload_, metadata=bearer(READER), timeout=10))
                assert code == DENIED and "operator 'audit' has role read_only, which may not call ReloadConfig" in details

                # B in A's place, and a new preemption policy: both live at once.
                path.write_text(yaml.safe_dump(settings(tenants={"acme": token_hash(B)}, preemption={"min_run_s": 5, "priority_gap": 3})))
                done = await operator.ReloadConfig(reload_, metadata=bearer(OPS), timeout=10)
                assert list(done.changed_sections) == ["tokens", "preemption"] and not done.refused
                assert done.config_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and done.HasField("applied_at")
                await tenant.ListJobs(jobs, metadata=bearer(B), timeout=10)
                code, details = await refused(tenant.ListJobs(jobs, metadata=bearer(A), timeout=10))
                assert code == UNAUTHENTICATED
                assert server.controller.preemption == PreemptionPolicy(enabled=True, min_run_s=5, priority_gap=3)

                # A listen address only changes with a restart: the whole reload is refused.
                path.write_text(yaml.safe_dump(settings(listen="127.0.0.1:1", tenants={"acme": token_hash(A)}, preemption={"enabled": False})))
                dry = await operator.ReloadConfig(operator_pb2.ReloadConfigRequest(dry_run=True), metadata=bearer(OPS), timeout=10)
                assert list(dry.changed_sections) == ["tokens", "preemption"] and not dry.HasField("applied_at")
                assert list(dry.refused) == ["listen: changes only with a restart (the gRPC port is bound at start)"]
                code, details = await refused(operator.ReloadConfig(reload_, metadata=bearer(OPS), timeout=10))
                assert code == grpc.StatusCode.FAILED_PRECONDITION and "nothing applied: listen: changes only with a restart" in details
                await tenant.ListJobs(jobs, metadata=bearer(B), timeout=10)  # the running config stays
                assert (await refused(tenant.ListJobs(jobs, metadata=bearer(A), timeout=10)))[0] == UNAUTHENTICATED
                assert server.controller.preemption.enabled and server.config.listen == "127.0.0.1:0"

                path.write_text("tenants: {acme: [\n")
                code, details = await refused(operator.ReloadConfig(reload_, metadata=bearer(OPS), timeout=10))
                assert code == grpc.StatusCode.INVALID_ARGUMENT and "does not load, nothing applied" in details
                await tenant.ListJobs(jobs, metadata=bearer(B), timeout=10)
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_a_standby_reloads_its_own_file(tmp_path):
    lease = {"lease_ttl_s": 2.0, "renew_every_s": 0.2, "step_down_margin_s": 0.5}
    paths = {}
    for name in ("a", "b"):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(settings(leadership={"advertise": f"127.0.0.{1 if name == 'a' else 2}:1", "replica_id": name, **lease})))

    async def main():
        leader, standby = (SchedulerServer(load_config(paths[n]), paths[n]) for n in ("a", "b"))
        await leader.start()
        try:
            await asyncio.wait_for(leader.leadership.ready.wait(), 10)
            port = await standby.start()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                tenant, operator = tenant_pb2_grpc.TenantServiceStub(channel), operator_pb2_grpc.OperatorServiceStub(channel)
                assert (await refused(tenant.ListJobs(tenant_pb2.ListJobsRequest(), metadata=bearer(A), timeout=10)))[0] == grpc.StatusCode.UNAVAILABLE
                paths["b"].write_text(paths["b"].read_text().replace(token_hash(A), token_hash(B)))
                done = await operator.ReloadConfig(operator_pb2.ReloadConfigRequest(), metadata=bearer(OPS), timeout=10)
                assert list(done.changed_sections) == ["tokens"]
                assert standby.auth.principal(bearer(B), "tenant").name == "acme"  # what it serves with once it leads
                code, _ = await refused(tenant.ListJobs(tenant_pb2.ListJobsRequest(), metadata=bearer(A), timeout=10))
                assert code == UNAUTHENTICATED  # the token is checked first, on a standby too
            assert leader.auth.principal(bearer(A), "tenant").name == "acme"  # the leader's file did not change
        finally:
            await standby.stop(0)
            await leader.stop(0)

    asyncio.run(main())


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_sighup_and_admin_reload_on_a_running_scheduler(tmp_path):
    cluster = LocalCluster(tmp_path, [], site_timeout_s=8.0, heartbeat_interval_s=1.0)
    try:
        cluster.start_scheduler()
        target, tokens_path = cluster.scheduler_target, tmp_path / "tokens.yaml"
        old = cluster.tenant_token("acme")
        with Client(target, old) as client:
            client.list()
        new = "rotated-" + old
        tokens = yaml.safe_load(tokens_path.read_text())
        tokens["tenants"]["acme"] = new
        tokens_path.write_text(yaml.safe_dump(tokens))
        os.kill(cluster.scheduler.popen.pid, signal.SIGHUP)

        def rotated() -> bool:
            with Client(target, new) as client:
                try:
                    client.list()
                    return True
                except grpc.RpcError as err:
                    assert err.code() == UNAUTHENTICATED
                    return False

        wait_until(rotated, 20, "the rotated token after SIGHUP")
        with Client(target, old) as client, pytest.raises(grpc.RpcError) as err:
            client.list()
        assert err.value.code() == UNAUTHENTICATED
        assert "config reloaded (SIGHUP): tokens changed" in cluster.scheduler.tail(40)

        ops = ("--scheduler", target, "--token", cluster.operator_token)
        code, out, _ = run_cli("admin", "reload", *ops)
        assert code == 0 and out.strip().endswith(": nothing changed"), out
        config = yaml.safe_load((tmp_path / "scheduler.yaml").read_text())
        (tmp_path / "scheduler.yaml").write_text(yaml.safe_dump({**config, "accounting": {"price_usd_per_mwh": 90}, "memory": {"recent_jobs": 10}}))
        code, out, _ = run_cli("admin", "reload", "--dry-run", *ops)
        assert code == 1 and "would be refused (restart to change): memory.recent_jobs: changes only with a restart" in out, out
        code, _, err = run_cli("admin", "reload", *ops)
        assert code == 1 and "FAILED_PRECONDITION" in err and "memory.recent_jobs" in err, err
        (tmp_path / "scheduler.yaml").write_text(yaml.safe_dump({**config, "accounting": {"price_usd_per_mwh": 90}}))
        code, out, _ = run_cli("admin", "reload", *ops)
        assert code == 0 and "accounting changed, applied at" in out, out
        code, _, err = run_cli("admin", "reload", "--scheduler", target, "--token", new)
        assert code == 1 and "PERMISSION_DENIED" in err, err
    finally:
        cluster.stop()
