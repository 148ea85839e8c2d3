"""The scheduler serves TLS when configured: clients that trust its certificate
work, plaintext clients and clients that trust another CA do not."""

import grpc
import pytest

from powerplane_dev.cluster import LocalCluster
from scheduler.client import Client, spec
from scheduler.server.certs import write_cert_set

pytestmark = pytest.mark.integration


def test_tls_only_for_clients_that_trust_the_server(tmp_path):
    made = write_cert_set(tmp_path / "certs")  # a CA and the scheduler's certificate for 127.0.0.1
    other_ca = write_cert_set(tmp_path / "other").ca_cert
    cert, key = made.server
    cluster = LocalCluster(tmp_path / "tls", [], tls=(cert, key, made.ca_cert))
    try:
        cluster.start_scheduler()
        token = cluster.tenant_token("acme")
        with Client(cluster.scheduler_target, token, tls_ca=made.ca_cert.read_bytes()) as trusted:
            assert trusted.submit(spec("echo tls"), "tls-1").created
        for untrusted in (
            Client(cluster.scheduler_target, token, timeout_s=3),
            Client(cluster.scheduler_target, token, tls_ca=other_ca.read_bytes(), timeout_s=3),
        ):
            with untrusted, pytest.raises(grpc.RpcError) as err:
                untrusted.list()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        cluster.stop()
