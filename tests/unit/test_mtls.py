"""Mutual TLS between agents and the scheduler (scheduler/server/mtls.py, certs.py), over
real gRPC on loopback with certificates from `write_cert_set`: a site's certificate
registers its own site and no other; a token for another site than the certificate is
refused; a connection without a client certificate is not accepted, and a user's
certificate (no site in it) may not call AgentService; the server picks up replaced
certificate files on the next connection, without a restart; the agent reads its files
again on every reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

import grpc
import pytest

from agents.session import AgentSettings, SiteAgent
from scheduler.api.v1 import agent_pb2, agent_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from scheduler.server.app import SchedulerServer
from scheduler.server.certs import site_of_certificate, write_cert_set
from scheduler.server.config import SchedulerConfig, TlsConfig
from tests.unit.test_agent_session_power import FakeRunner, until

TENANT = "tenant-token-0123456789"
SITES = {"us-1": "us-1-token-0123456789", "eu-1": "eu-1-token-0123456789"}
OWN_SUBCHANNELS = [("grpc.use_local_subchannel_pool", 1)]  # every channel makes its own connection (a new handshake)


@pytest.fixture
def certs(tmp_path):
    return write_cert_set(tmp_path / "certs", sites=list(SITES), clients=["acme"])


def config_for(tmp_path, certs) -> SchedulerConfig:
    tls = TlsConfig(cert_file=certs.server[0], key_file=certs.server[1], client_ca_file=certs.ca_cert)
    return SchedulerConfig(listen="127.0.0.1:0", database=tmp_path / "pp.db", regions=["us"], tenants={"acme": TENANT}, sites=SITES, tls=tls)


def credentials(ca_path, pair=None) -> grpc.ChannelCredentials:
    key, cert = (pair[1].read_bytes(), pair[0].read_bytes()) if pair else (None, None)
    return grpc.ssl_channel_credentials(ca_path.read_bytes(), key, cert)


async def register(port: int, creds, token: str, site: str) -> str:
    """Open AgentService.Connect and register `site`: the first reply's kind, or the AioRpcError."""
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=OWN_SUBCHANNELS) as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).Connect(metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        await call.write(agent_pb2.AgentMessage(register=agent_pb2.Register(site_id=site, region="us")))
        first = await call.read()
        call.cancel()
        return first.WhichOneof("body")


@contextlib.asynccontextmanager
async def serving(config):
    server = SchedulerServer(config)
    port = await server.start()
    try:
        yield server, port
    finally:
        await server.stop(0)


def test_the_site_is_the_certificates_uri_san(certs):
    assert site_of_certificate(certs.sites["us-1"][0].read_bytes()) == "us-1"
    assert site_of_certificate(certs.clients["acme"][0].read_bytes()) is None
    assert site_of_certificate(certs.server[0].read_bytes()) is None
    assert certs.sites["us-1"][1].stat().st_mode & 0o777 == 0o600 and certs.ca_key.stat().st_mode & 0o777 == 0o600


def test_a_sites_certificate_registers_its_own_site_and_no_other(tmp_path, certs):
    async def main():
        async with serving(config_for(tmp_path, certs)) as (server, port):
            us = credentials(certs.ca_cert, certs.sites["us-1"])
            assert await register(port, us, SITES["us-1"], "us-1") == "registered"
            with pytest.raises(grpc.aio.AioRpcError) as other_site:  # its own token, another site's Register
                await register(port, us, SITES["us-1"], "eu-1")
            assert other_site.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "certificate is site 'us-1'" in other_site.value.details() and "'eu-1'" in other_site.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as other_token:  # the other site's token and Register
                await register(port, us, SITES["eu-1"], "eu-1")
            assert other_token.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "token is site 'eu-1'" in other_token.value.details() and "certificate is site 'us-1'" in other_token.value.details()
            assert "eu-1" not in server.controller.sites

    asyncio.run(main())


def test_no_connection_without_a_client_certificate_and_no_agent_call_with_a_users(tmp_path, certs):
    async def main():
        async with serving(config_for(tmp_path, certs)) as (server, port):
            with pytest.raises(grpc.aio.AioRpcError) as bare:  # the handshake fails: no call reaches the server
                await register(port, credentials(certs.ca_cert), SITES["us-1"], "us-1")
            assert bare.value.code() == grpc.StatusCode.UNAVAILABLE
            user = credentials(certs.ca_cert, certs.clients["acme"])
            with pytest.raises(grpc.aio.AioRpcError) as no_site:
                await register(port, user, SITES["us-1"], "us-1")
            assert no_site.value.code() == grpc.StatusCode.PERMISSION_DENIED and "names no site" in no_site.value.details()
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", user, options=OWN_SUBCHANNELS) as channel:  # the user's own calls work
                reply = await tenant_pb2_grpc.TenantServiceStub(channel).ListJobs(
                    tenant_pb2.ListJobsRequest(), metadata=(("authorization", f"Bearer {TENANT}"),), timeout=10
                )
            assert list(reply.jobs) == []

    asyncio.run(main())


def test_replaced_certificate_files_serve_the_next_connection_without_a_restart(tmp_path, certs):
    async def main():
        async with serving(config_for(tmp_path, certs)) as (server, port):
            rotated = write_cert_set(tmp_path / "rotated", sites=["us-1"], new_ca=True)
            old_site, new_site = certs.sites["us-1"], rotated.sites["us-1"]
            old_ca = shutil.copy(certs.ca_cert, tmp_path / "old-ca.crt")
            assert await register(port, credentials(certs.ca_cert, old_site), SITES["us-1"], "us-1") == "registered"
            # Half a rotation (the new certificate, the old key) does not load: the old set still serves.
            shutil.copy(rotated.server[0], certs.server[0])
            assert await register(port, credentials(certs.ca_cert, old_site), SITES["us-1"], "us-1") == "registered"
            for new, old in ((rotated.server[1], certs.server[1]), (rotated.ca_cert, certs.ca_cert)):
                shutil.copy(new, old)  # the rest of the new set, the client CA too
            assert await register(port, credentials(rotated.ca_cert, new_site), SITES["us-1"], "us-1") == "registered"
            assert server.tls.reloads == 1
            for stale in (credentials(rotated.ca_cert, old_site), credentials(old_ca, new_site)):
                with pytest.raises(grpc.aio.AioRpcError) as refused:  # an old client certificate, or trusting the old server CA
                    await register(port, stale, SITES["us-1"], "us-1")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    asyncio.run(main())


def test_the_agent_reads_its_certificate_again_on_every_reconnect(tmp_path, certs, caplog):
    async def main():
        async with serving(config_for(tmp_path, certs)) as (server, port):
            foreign = write_cert_set(tmp_path / "foreign", sites=["us-1"], new_ca=True)  # a CA the scheduler does not trust
            agent_dir = tmp_path / "agent"
            agent_dir.mkdir()
            cert, key = agent_dir / "tls.crt", agent_dir / "tls.key"
            for src, dst in zip(foreign.sites["us-1"], (cert, key)):
                shutil.copy(src, dst)
            settings = AgentSettings(
                "us-1",
                "us",
                f"127.0.0.1:{port}",
                SITES["us-1"],
                tls_ca_file=certs.ca_cert,
                tls_cert_file=cert,
                tls_key_file=key,
                backoff_initial_s=0.05,
                backoff_max_s=0.1,
            )
            agent = SiteAgent(settings, FakeRunner())
            running = asyncio.create_task(agent.run_forever())
            try:
                await until(lambda: any("stream to scheduler" in r.getMessage() for r in caplog.records), what="a refused connection")
                assert not agent.connected.is_set()
                for src, dst in zip(certs.sites["us-1"], (cert, key)):  # the renewed certificate lands in place, as a Secret update would
                    shutil.copy(src, dst)
                await until(agent.connected.is_set, what="the agent connected with its new certificate")
                assert "us-1" in server.controller.sites
            finally:
                agent.stop()
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    asyncio.run(main())
