"""The site agents as the chart renders them: one Deployment per site, its
command line, the only secret material it mounts (its own token, the CA), its
metrics port and HTTP probes, its headless metrics Service, its
PodDisruptionBudget and its priority (class).
"""

from __future__ import annotations

import pytest

from tests.integration.helm_support import (
    MULTISITE_SITES,
    SCHEDULER,
    VARIANTS,
    agent_deployments,
    arg_value,
    by_name,
    by_site_label,
    component,
    mounts,
    of_kind,
    only_container,
    pod_spec,
    render,
    rendered,
    scheduler_deployment,
    secret_data,
    selects,
    template,
    tokens_file,
    volume_at,
    volumes,
)


def _check_agent(docs, site: str, dep: dict, *, region: str, tls: bool) -> tuple[str, str]:
    """Checks one agent Deployment; returns the (secret, key) its token comes from."""
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    c = only_container(dep)
    args = c["args"]
    assert c["command"] == ["powerplane"]
    assert args[0] == "agent"
    assert arg_value(args, "--site") == site
    assert arg_value(args, "--region") == region
    assert arg_value(args, "--scheduler") == f"{SCHEDULER}:50051"
    assert arg_value(args, "--token-file") == "/etc/powerplane/agent-token/token"
    assert arg_value(args, "--ray-address")
    assert arg_value(args, "--gpu-model")
    assert arg_value(args, "--tls-ca") == ("/etc/powerplane/tls/ca.crt" if tls else None)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]

    # Resource names are DNS-safe even when the site id is not.
    name = dep["metadata"]["name"]
    assert name.startswith("powerplane-agent-") and name == name.lower() and "_" not in name
    assert "." not in name

    # The only secret material in the pod: its own token, plus (TLS) the CA.
    secret_vols = [v for v in volumes(dep).values() if "secret" in v]
    token_vol = volume_at(dep, "/etc/powerplane/agent-token")
    items = token_vol["secret"].get("items")
    assert items and len(items) == 1, f"agent {site} must project exactly one key (its own token): {token_vol}"
    item = items[0]
    assert item["path"] == "token"
    if tls:
        ca = volume_at(dep, "/etc/powerplane/tls")["secret"]
        assert ca["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        assert len(secret_vols) == 2
    else:
        assert "/etc/powerplane/tls" not in mounts(dep)
        assert len(secret_vols) == 1
    for v in dep["spec"]["template"]["spec"]["volumes"]:
        assert "projected" not in v
        for it in v.get("secret", {}).get("items", []):
            assert it["key"] not in {"tokens.yaml", "tls.key", "tls.crt"}
    assert "checksum/token" in dep["spec"]["template"]["metadata"]["annotations"]
    return token_vol["secret"]["secretName"], item["key"]


def test_default_agent():
    docs = render("default")
    agents = agent_deployments(docs)
    assert set(agents) == {"us-1"}
    dep = agents["us-1"]
    source = _check_agent(docs, "us-1", dep, region="us", tls=False)
    args = only_container(dep)["args"]
    assert arg_value(args, "--ray-address") == "http://ray-head-svc.ray.svc:8265"
    assert "--ray-site-resource" not in args
    assert "--site-config" not in args  # no power block: as before
    # Its token Secret is the chart's per-site Secret, holding exactly that
    # site's token from tokens.yaml and nothing else.
    secret = by_name(docs, "Secret", source[0])
    assert source[1] == "token"
    assert secret_data(secret) == {"token": tokens_file(docs)["sites"]["us-1"]}


def test_multisite_agents():
    docs = render("multisite")
    agents = agent_deployments(docs)
    assert set(agents) == set(MULTISITE_SITES)
    sources = set()
    for site, region in MULTISITE_SITES.items():
        dep = agents[site]
        secret, key = _check_agent(docs, site, dep, region=region, tls=True)
        # existingSecret: each agent projects only its own site-<id> key.
        assert (secret, key) == ("powerplane-tokens", f"site-{site}")
        sources.add((secret, key))
        args = only_container(dep)["args"]
        assert arg_value(args, "--ray-site-resource") == "site_" + site.replace("-", "_")
        assert site in arg_value(args, "--ray-address")
        pod = dep["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"topology.kubernetes.io/zone": site}
        assert dep["metadata"]["name"] == f"powerplane-agent-{site}"
    assert len(sources) == len(MULTISITE_SITES)
    eu = agents["eu-no-1"]["spec"]["template"]["spec"]
    assert eu["tolerations"][0]["key"] == "powerplane.io/dedicated"
    assert only_container(agents["eu-no-1"])["resources"]["requests"]["cpu"] == "100m"


def test_tls_inline_agents_sanitized_names():
    docs = render("tls-inline")
    agents = agent_deployments(docs)
    assert set(agents) == {"us-1", "EU_West.2"}
    tokens = tokens_file(docs)
    sources = set()
    for site, region in (("us-1", "us"), ("EU_West.2", "eu")):
        secret, key = _check_agent(docs, site, agents[site], region=region, tls=True)
        assert key == "token"
        assert secret_data(by_name(docs, "Secret", secret)) == {"token": tokens["sites"][site]}
        sources.add(secret)
    assert len(sources) == 2
    eu = agents["EU_West.2"]
    assert eu["metadata"]["name"] == "powerplane-agent-eu-west-2"
    assert eu["metadata"]["labels"]["powerplane.io/site"] == "eu-west-2"
    assert arg_value(only_container(eu)["args"], "--ray-site-resource") == "site_eu_west_2"
    pod = eu["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


# Per variant: the agents' metrics port, their PriorityClass, their PDB's
# maxUnavailable (None: no PDBs).
EXPECTED_AGENT_METRICS_PORT = {"default": 9465, "multisite": 9465, "tls-inline": 9100, "production": 9465}
EXPECTED_AGENT_PRIORITY = {"default": None, "multisite": None, "tls-inline": "site-critical", "production": "powerplane-agent"}
EXPECTED_AGENT_PDB = {"default": 0, "multisite": 0, "tls-inline": None, "production": 0}


def _pod_labels(dep: dict) -> dict:
    return dep["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_agent_metrics_port_and_probes(variant):
    """Each agent listens on its metrics port (--metrics-listen), the port is
    named "metrics", liveness/startup GET /healthz and readiness GET /readyz
    there, and the real CLI reads the flag back."""
    from scheduler.cli.main import _parser

    port = EXPECTED_AGENT_METRICS_PORT[variant]
    for site, dep in agent_deployments(render(variant)).items():
        c = only_container(dep)
        assert arg_value(c["args"], "--metrics-listen") == f"0.0.0.0:{port}", site
        assert _parser().parse_args(c["args"]).metrics_listen == f"0.0.0.0:{port}"
        assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        for probe, path in (("livenessProbe", "/healthz"), ("startupProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert c[probe]["httpGet"] == {"path": path, "port": "metrics"}, (site, probe)
            assert c[probe]["periodSeconds"] >= 1 and c[probe]["failureThreshold"] >= 1
        # the startup probe waits out --ray-wait-s (120 s by default) before liveness applies
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 120


def test_agent_probe_timing_from_values():
    docs = rendered(template(sets=("agent.probes.liveness.periodSeconds=30", "agent.probes.readiness.initialDelaySeconds=7")))
    c = only_container(agent_deployments(docs)["us-1"])
    assert c["livenessProbe"]["periodSeconds"] == 30
    assert c["readinessProbe"]["initialDelaySeconds"] == 7


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_agent_metrics_services(variant):
    """One headless Service per agent, port "metrics" only, selecting exactly
    that site's agent pod, still listing it while unready."""
    docs = render(variant)
    agents = agent_deployments(docs)
    services = by_site_label(docs, "Service")
    assert len(services) == len(agents)
    port = EXPECTED_AGENT_METRICS_PORT[variant]
    for site, dep in agents.items():
        slug = dep["metadata"]["labels"]["powerplane.io/site"]
        svc = services[slug]
        assert svc["metadata"]["name"] == dep["metadata"]["name"]
        assert svc["metadata"]["labels"]["powerplane.io/metrics-job"] == "powerplane-agent"
        spec = svc["spec"]
        assert spec["clusterIP"] == "None" and spec["type"] == "ClusterIP"
        assert spec["publishNotReadyAddresses"] is True
        assert spec["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP", "appProtocol": "http"}]
        chosen = [s for s, other in agents.items() if selects(spec["selector"], _pod_labels(other))]
        assert chosen == [site], f"Service {svc['metadata']['name']} selects {chosen}"
        assert not selects(spec["selector"], _pod_labels(scheduler_deployment(docs)))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_agent_pod_disruption_budgets(variant):
    docs = render(variant)
    agents = agent_deployments(docs)
    pdbs = by_site_label(docs, "PodDisruptionBudget")
    if EXPECTED_AGENT_PDB[variant] is None:
        assert pdbs == {}
        return
    assert len(pdbs) == len(agents)
    for site, dep in agents.items():
        pdb = pdbs[dep["metadata"]["labels"]["powerplane.io/site"]]
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"]["maxUnavailable"] == EXPECTED_AGENT_PDB[variant]
        assert "minAvailable" not in pdb["spec"]
        chosen = [s for s, other in agents.items() if selects(pdb["spec"]["selector"], _pod_labels(other))]
        assert chosen == [site]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_agent_priority(variant):
    docs = render(variant)
    want = EXPECTED_AGENT_PRIORITY[variant]
    for dep in agent_deployments(docs).values():
        assert pod_spec(dep).get("priorityClassName") == want
    classes = of_kind(docs, "PriorityClass")
    if variant == "production":  # agent.priorityClass.create: the chart makes the class the agents use
        assert [c["metadata"]["name"] for c in classes] == [want]
        assert classes[0]["value"] == 1000000 and isinstance(classes[0]["value"], int)
        assert classes[0]["globalDefault"] is False
    else:
        assert classes == []


def test_created_priority_class_takes_the_given_name():
    docs = rendered(template(sets=("agent.priorityClass.create=true", "agent.priorityClass.value=5000", "agent.priorityClassName=site-guard")))
    (cls,) = of_kind(docs, "PriorityClass")
    assert cls["metadata"]["name"] == "site-guard" and cls["value"] == 5000
    assert pod_spec(agent_deployments(docs)["us-1"])["priorityClassName"] == "site-guard"
    assert "priorityClassName" not in pod_spec(scheduler_deployment(docs))
    assert component(docs, "PriorityClass", "agent") == [cls]
