"""Mutual TLS in the chart (scheduler.tls.clientCaSecretName, sites[].clientCertSecret),
rendered by the real `helm` and validated with kubernetes-validate: the scheduler mounts the
client CA from its Secret and names it in scheduler.yaml (which the real load_config accepts
and the real server serves with certificates from scheduler/server/certs.py); each agent
mounts its own certificate Secret and passes it with --tls-cert/--tls-key; without a client
CA nothing of it is rendered; settings that cannot work fail the render with a clear message."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from scheduler.server.app import SchedulerServer
from scheduler.server.certs import write_cert_set
from tests.integration.helm_support import (
    K8S_VERSIONS,
    agent_deployments,
    arg_value,
    only_container,
    rendered,
    scheduler_config,
    scheduler_deployment,
    template,
    validation_errors,
    volume_at,
    write_values,
)

pytestmark = pytest.mark.integration

SITES = ("us-1", "eu-1")


def mtls_values(tmp_path, **scheduler_tls) -> list:
    sites = [{"id": s, "region": s[:2], "rayAddress": f"http://ray-{s}:8265", "gpuModel": "H100", "clientCertSecret": f"pp-site-{s}-tls"} for s in SITES]
    values = {
        "scheduler": {"tls": {"enabled": True, "secretName": "pp-tls", "clientCaSecretName": "pp-client-ca", **scheduler_tls}},
        "tokens": {"sites": {s: f"{s}-site-token-0123456789" for s in SITES}},
        "sites": sites,
    }
    return [write_values(tmp_path, values)]


def test_the_scheduler_mounts_the_client_ca_and_each_agent_its_certificate(tmp_path):
    docs = rendered(template(mtls_values(tmp_path)))
    for k8s in K8S_VERSIONS:
        assert validation_errors(docs, k8s)[0] == []
    assert scheduler_config(docs)["tls"]["client_ca_file"] == "/etc/powerplane/client-ca/ca.crt"
    ca = volume_at(scheduler_deployment(docs), "/etc/powerplane/client-ca")["secret"]
    assert ca["secretName"] == "pp-client-ca" and [i["key"] for i in ca["items"]] == ["ca.crt"]
    agents = agent_deployments(docs)
    assert set(agents) == set(SITES)
    for site, dep in agents.items():
        args = only_container(dep)["args"]
        assert arg_value(args, "--tls-cert") == "/etc/powerplane/agent-tls/tls.crt"
        assert arg_value(args, "--tls-key") == "/etc/powerplane/agent-tls/tls.key"
        own = volume_at(dep, "/etc/powerplane/agent-tls")["secret"]  # a directory mount: Secret updates reach the pod
        assert own["secretName"] == f"pp-site-{site}-tls"
        assert {i["key"] for i in own["items"]} == {"tls.crt", "tls.key"}


def test_the_rendered_mtls_config_serves_in_the_real_scheduler(tmp_path):
    from scheduler.server.config import load_config

    docs = rendered(template(mtls_values(tmp_path)))
    config = scheduler_config(docs)
    made = write_cert_set(tmp_path / "certs")  # the pod's mounted files, here
    config["tls"] = {k: str(v) for k, v in zip(("cert_file", "key_file", "client_ca_file"), (*made.server, made.ca_cert))}
    config.pop("tokens_file")
    config["database"] = str(tmp_path / "pp.db")
    config["listen"] = "127.0.0.1:0"
    for key in ("metrics_listen", "dashboard_listen"):
        config[key] = ""
    (tmp_path / "scheduler.yaml").write_text(yaml.safe_dump(config))
    loaded = load_config(tmp_path / "scheduler.yaml")

    async def main():
        server = SchedulerServer(loaded)
        await server.start()
        try:
            assert server.tls is not None and server.tls.requires_client_cert
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_without_a_client_ca_nothing_of_mtls_is_rendered(tmp_path):
    docs = rendered(template(mtls_values(tmp_path, clientCaSecretName="")))
    assert "client_ca_file" not in scheduler_config(docs)["tls"]
    for dep in agent_deployments(docs).values():
        assert arg_value(only_container(dep)["args"], "--tls-cert") is None
        assert all(m["mountPath"] != "/etc/powerplane/agent-tls" for m in only_container(dep)["volumeMounts"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"scheduler.tls.enabled": "false"}, "mutual TLS needs TLS on"),
        ({"scheduler.probes.tlsProbe": "grpc"}, "needs scheduler.probes.tlsProbe: tcp"),
        ({"sites[1].clientCertSecret": ""}, "site eu-1 has no clientCertSecret"),
    ],
)
def test_settings_that_cannot_work_fail_the_render(tmp_path, change, message):
    values = mtls_values(tmp_path)
    if "sites[1].clientCertSecret" in change:  # --set on a list would replace it: write the values instead
        data = yaml.safe_load(values[0].read_text())
        data["sites"][1]["clientCertSecret"] = ""
        values = [write_values(tmp_path, data, "broken.yaml")]
        change = {}
    result = template(values, [f"{k}={v}" for k, v in change.items()])
    assert result.returncode != 0 and message in result.stderr, result.stderr
