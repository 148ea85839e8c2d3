"""The site agents as the chart renders them: one Deployment per site, its
command line, and the only secret material it mounts (its own token, the CA).
"""

from __future__ import annotations

from tests.integration.helm_support import (
    MULTISITE_SITES,
    SCHEDULER,
    agent_deployments,
    arg_value,
    by_name,
    mounts,
    only_container,
    render,
    secret_data,
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
