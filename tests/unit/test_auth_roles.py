"""Hashed tokens and roles over real gRPC (an in-process scheduler on loopback): hashed and
plaintext tokens both authenticate; a tenant viewer may read but not submit, a read-only
operator may read but not post grid events (PERMISSION_DENIED naming role and method); an
unknown token is UNAUTHENTICATED; every RPC of every service is in the permission table;
`powerplane admin hash-token` prints what the config takes."""

from __future__ import annotations

import asyncio
import io
import logging

import grpc
import pytest

from scheduler.api.v1 import agent_pb2, operator_pb2, operator_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from scheduler.server import permissions
from scheduler.server.app import SchedulerServer
from scheduler.server.config import SchedulerConfig
from scheduler.server.tokens import token_hash

MEMBER, VIEWER = "member-token-0123456789abcdef", "viewer-token-0123456789abcdef"
OPS, READER = "ops-token-0123456789abcdef", "reader-token-0123456789abcdef"
TENANTS = {"acme": token_hash(MEMBER), "acme-view": {"token": token_hash(VIEWER), "role": "viewer"}, "plain": "plain-token-0123456789abcdef"}
OPERATORS = {"ops": token_hash(OPS), "audit": {"token": READER, "role": "read_only"}}


def bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


async def refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details()


DENIED, UNAUTHENTICATED, INVALID = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT


def test_every_rpc_of_every_service_is_in_the_permission_table():
    rpcs = {f"/{s.full_name}/{m.name}" for module in (tenant_pb2, operator_pb2, agent_pb2) for s in module.DESCRIPTOR.services_by_name.values() for m in s.methods}
    assert rpcs and not rpcs - set(permissions.METHODS), f"RPCs with no permission: {sorted(rpcs - set(permissions.METHODS))}"
    assert not set(permissions.METHODS) - rpcs, f"no such RPC: {sorted(set(permissions.METHODS) - rpcs)}"
    assert set(permissions.METHODS.values()) <= set().union(*permissions.GRANTS.values())


def test_a_method_missing_from_the_table_is_refused_to_everyone():
    with pytest.raises(Exception, match="not in the scheduler's permission table"):
        permissions.check("operator", "ops", "operator", "/powerplane.v1.OperatorService/Unclassified")


def test_hashed_and_plaintext_tokens_and_roles_over_grpc(tmp_path, caplog):
    async def main():
        config = SchedulerConfig(listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"], tenants=TENANTS, operators=OPERATORS)
        server = SchedulerServer(config)
        with caplog.at_level(logging.WARNING, logger="scheduler.server.interceptor"):
            port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                tenant, operator = tenant_pb2_grpc.TenantServiceStub(channel), operator_pb2_grpc.OperatorServiceStub(channel)
                for token in (MEMBER, VIEWER, "plain-token-0123456789abcdef"):  # hashed, hashed with a role, plaintext
                    await tenant.ListJobs(tenant_pb2.ListJobsRequest(), metadata=bearer(token), timeout=10)
                # A hash is not a token: presenting the stored hash itself is refused.
                assert (await refused(tenant.ListJobs(tenant_pb2.ListJobsRequest(), metadata=bearer(token_hash(MEMBER)), timeout=10)))[0] == UNAUTHENTICATED
                code, details = await refused(tenant.SubmitJob(tenant_pb2.SubmitJobRequest(), metadata=bearer(VIEWER), timeout=10))
                assert code == DENIED and "tenant 'acme-view' has role viewer, which may not call SubmitJob" in details
                assert (await refused(tenant.CancelJob(tenant_pb2.CancelJobRequest(job_id="x"), metadata=bearer(VIEWER), timeout=10)))[0] == DENIED
                # A member's submit gets past the permission check (refused only for its empty spec).
                assert (await refused(tenant.SubmitJob(tenant_pb2.SubmitJobRequest(), metadata=bearer(MEMBER), timeout=10)))[0] == INVALID
                for token in (OPS, READER):
                    await operator.ListSites(operator_pb2.ListSitesRequest(), metadata=bearer(token), timeout=10)
                    await operator.ListGridEvents(operator_pb2.ListGridEventsRequest(), metadata=bearer(token), timeout=10)
                code, details = await refused(operator.PostGridEvent(operator_pb2.GridEvent(), metadata=bearer(READER), timeout=10))
                assert code == DENIED and "operator 'audit' has role read_only, which may not call PostGridEvent" in details
                assert (await refused(operator.DrainSite(operator_pb2.DrainSiteRequest(site_id="us-1"), metadata=bearer(READER), timeout=10)))[0] == DENIED
                assert (await refused(operator.PostGridEvent(operator_pb2.GridEvent(), metadata=bearer(OPS), timeout=10)))[0] == INVALID  # past the check: the empty event is refused
                assert (await refused(tenant.ListJobs(tenant_pb2.ListJobsRequest(), metadata=bearer("unknown-token-0123456789"), timeout=10)))[0] == UNAUTHENTICATED
                assert (await refused(operator.ListSites(operator_pb2.ListSitesRequest(), metadata=bearer(VIEWER), timeout=10)))[0] == DENIED  # a tenant token at the operator service
        finally:
            await server.stop(0)

    asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "plaintext" in r.getMessage()]
    assert len(warnings) == 1 and "tenant 'plain'" in warnings[0] and "operator 'audit'" in warnings[0] and "acme" not in warnings[0]


def test_only_digests_are_kept_and_bad_hashes_or_roles_are_refused():
    config = SchedulerConfig(tenants=TENANTS, operators=OPERATORS)
    owners = config.token_owners()
    assert all(isinstance(key, bytes) and len(key) == 32 for key in owners)
    assert sorted(owners.values())[0] == ("operator", "audit", "read_only")
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        SchedulerConfig(tenants={"acme": "sha256:abc"})
    with pytest.raises(ValueError, match="role of 'acme' must be one of member, viewer"):
        SchedulerConfig(tenants={"acme": {"token": token_hash(MEMBER), "role": "read_only"}})
    with pytest.raises(ValueError, match="the same token is given to"):  # a token and its own hash
        SchedulerConfig(tenants={"acme": MEMBER}, operators={"ops": token_hash(MEMBER)}).token_owners()


def test_admin_hash_token_prints_the_hash_of_stdin(monkeypatch, capsys):
    from scheduler.cli.main import main

    monkeypatch.setattr("sys.stdin", io.StringIO(MEMBER + "\n"))
    assert main(["admin", "hash-token"]) == 0
    assert capsys.readouterr().out.strip() == token_hash(MEMBER) == "sha256:" + __import__("hashlib").sha256(MEMBER.encode()).hexdigest()
