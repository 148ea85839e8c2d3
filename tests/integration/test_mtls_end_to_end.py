"""Mutual TLS end to end (docs/security.md) on a LocalCluster(mtls=True): real Ray, the
scheduler and a site agent as processes over gRPC on loopback. The agent connects with its
site's certificate and the site comes READY; a tenant presenting its certificate runs a
training job on Ray to SUCCEEDED and reads its logs back through the agent; a client
without a certificate gets no connection (UNAVAILABLE); and on AgentService the site's
token goes only with its own site's certificate: another site's or a user's is refused."""

from __future__ import annotations

import time

import grpc
import pytest

from powerplane_dev.cluster import LocalCluster, SiteSpec
from scheduler.api.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from scheduler.client import Client, spec
from scheduler.server.certs import load_or_make_ca, make_site_cert

pytestmark = pytest.mark.integration


def wait_job(client: Client, job_id: str, timeout_s: float = 120.0) -> types_pb2.Job:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(job_id)
        if job.state in (types_pb2.JOB_STATE_SUCCEEDED, types_pb2.JOB_STATE_FAILED, types_pb2.JOB_STATE_CANCELLED) or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def register_with(cluster: LocalCluster, key_cert: tuple[bytes, bytes], site_id: str) -> grpc.RpcError:
    """AgentService.Connect with `site_id`'s token and this certificate: the error it ends with."""
    creds = grpc.ssl_channel_credentials(cluster.tls_ca, *key_cert)
    token = cluster.tokens["sites"][site_id]
    with grpc.secure_channel(cluster.scheduler_target, creds) as channel:
        hello = agent_pb2.AgentMessage(register=agent_pb2.Register(site_id=site_id, region="us"))
        replies = agent_pb2_grpc.AgentServiceStub(channel).Connect(iter([hello]), metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            next(replies)
    return refused.value


def test_agents_and_users_present_certificates_end_to_end(tmp_path):
    cluster = LocalCluster(tmp_path / "mtls", [SiteSpec("m-1", "us", gpus=1)], regions=("us",), mtls=True)
    try:
        cluster.start_ray()
        cluster.start_scheduler()
        cluster.start_agents()
        with cluster.client("ops") as ops, cluster.client("acme") as acme:
            cluster.wait_sites_ready(ops, timeout_s=90)
            assert ops.site("m-1").site.state == types_pb2.SITE_STATE_READY
            assert "registered site m-1" in cluster.agents["m-1"].tail(200)  # over its site certificate: no other way in

            submitted = acme.submit(spec("python -c \"print('ok')\"", gpus=1), "mtls-1")
            job = wait_job(acme, submitted.job.job_id)
            assert job.state == types_pb2.JOB_STATE_SUCCEEDED, f"{job}\n--- scheduler log:\n{cluster.scheduler.tail(40)}\n--- agent log:\n{cluster.agents['m-1'].tail(40)}"
            assert "ok" in acme.logs(job.job_id).text  # fetched from Ray through the agent's mTLS stream

        for bare in (
            Client(cluster.scheduler_target, cluster.tenant_token("acme"), tls_ca=cluster.tls_ca, timeout_s=5),  # trusts the server, no certificate
            Client(cluster.scheduler_target, cluster.operator_token, tls_ca=cluster.tls_ca, timeout_s=5),
        ):
            for call in (bare.list, bare.sites):
                with pytest.raises(grpc.RpcError) as refused:
                    call()
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            bare.close()

        # The site's token is not enough: another site's certificate (same CA) or a user's is refused.
        other = make_site_cert(load_or_make_ca(cluster.workdir / "certs"), "m-2")
        wrong_site = register_with(cluster, (other.key_pem, other.cert_pem), "m-1")
        assert wrong_site.code() == grpc.StatusCode.PERMISSION_DENIED and "certificate is site 'm-2'" in wrong_site.details()
        user = register_with(cluster, cluster.tls_identity("acme"), "m-1")
        assert user.code() == grpc.StatusCode.PERMISSION_DENIED and "names no site" in user.details()
        with cluster.client("ops") as ops:  # the refusals did not disturb the site's own session
            assert ops.site("m-1").site.state == types_pb2.SITE_STATE_READY
    finally:
        cluster.stop()
