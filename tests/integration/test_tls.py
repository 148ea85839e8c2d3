"""The scheduler serves TLS when configured: clients that trust its certificate
work, plaintext clients and clients that trust another CA do not."""

import subprocess

import grpc
import pytest

from powerplane_dev.cluster import LocalCluster
from scheduler.client import Client, spec

pytestmark = pytest.mark.integration


def self_signed(directory, name):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_only_for_clients_that_trust_the_server(tmp_path):
    cert, key = self_signed(tmp_path, "server")
    other_ca, _ = self_signed(tmp_path, "other")
    cluster = LocalCluster(tmp_path / "tls", [], tls=(cert, key))
    try:
        cluster.start_scheduler()
        token = cluster.tenant_token("acme")
        with Client(cluster.scheduler_target, token, tls_ca=cert.read_bytes()) as trusted:
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
