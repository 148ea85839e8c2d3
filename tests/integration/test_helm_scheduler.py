"""The scheduler as the chart renders it: its Deployment (security, volumes,
checksums, ports, priority), probes, Service (gRPC, metrics, dashboard), its
PodDisruptionBudget, scheduler.yaml and tokens.yaml, loaded with the
scheduler's own load_config.
"""

from __future__ import annotations

import pytest

from tests.integration.helm_support import (
    MULTISITE_POWER,
    MULTISITE_SITES,
    SCHEDULER,
    VARIANTS,
    agent_deployments,
    by_name,
    component,
    load_rendered_config,
    mounts,
    of_kind,
    only_container,
    pod_spec,
    render,
    rendered,
    scheduler_config,
    scheduler_deployment,
    selects,
    template,
    tokens_file,
    volume_at,
    volumes,
)

# Per variant: the scheduler's (metrics, dashboard) ports, None when off.
EXPECTED_HTTP_PORTS = {
    "default": (9464, 8080),
    "multisite": (9464, 8080),
    "tls-inline": (None, 8443),
    "production": (9464, 8080),
}
# Per variant: the scheduler pod's priorityClassName, and its PDB's
# maxUnavailable.
EXPECTED_PRIORITY = {"default": None, "multisite": None, "tls-inline": "powerplane-control", "production": None}
EXPECTED_PDB = {"default": 0, "multisite": 0, "tls-inline": 1, "production": 0}
TLS_VARIANTS = {"multisite", "tls-inline", "production"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_deployment(variant):
    docs = render(variant)
    dep = scheduler_deployment(docs)
    assert dep["metadata"]["name"] == SCHEDULER
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    c = only_container(dep)
    assert c["command"] == ["powerplane"]
    assert c["args"] == ["scheduler", "--config", "/etc/powerplane/scheduler.yaml"]
    assert {"name": "grpc", "containerPort": 50051, "protocol": "TCP"} in c["ports"]

    # security
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"] and c["resources"]["limits"]
    sa = pod["serviceAccountName"]
    assert sa in {d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount")}

    # config file, tokens, database
    cfg_mount = mounts(dep)["/etc/powerplane/scheduler.yaml"]
    assert cfg_mount["subPath"] == "scheduler.yaml"
    assert volumes(dep)[cfg_mount["name"]]["configMap"]["name"] == SCHEDULER
    tok = volume_at(dep, "/etc/powerplane/tokens")["secret"]
    assert tok["items"] == [{"key": "tokens.yaml", "path": "tokens.yaml"}]
    data = volume_at(dep, "/var/lib/powerplane")
    if variant == "tls-inline":  # persistence disabled
        assert data == {"name": data["name"], "emptyDir": {}}
        assert not of_kind(docs, "PersistentVolumeClaim")
    else:
        claim = data["persistentVolumeClaim"]["claimName"]
        pvc = by_name(docs, "PersistentVolumeClaim", claim)
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert pvc["spec"]["resources"]["requests"]["storage"]
    assert "/tmp" in mounts(dep)

    # pods roll when config or tokens change
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64
    assert len(annotations["checksum/tokens"]) == 64


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_ports_and_priority(variant):
    dep = scheduler_deployment(render(variant))
    metrics, dashboard = EXPECTED_HTTP_PORTS[variant]
    want = [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"}]
    if metrics:
        want.append({"name": "metrics", "containerPort": metrics, "protocol": "TCP"})
    if dashboard:
        want.append({"name": "http", "containerPort": dashboard, "protocol": "TCP"})
    assert only_container(dep)["ports"] == want
    assert pod_spec(dep).get("priorityClassName") == EXPECTED_PRIORITY[variant]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_config_listens_on_the_pod_ports(variant, tmp_path):
    """metrics_listen and dashboard_listen, as the real scheduler loads them,
    are the container ports ("" when off)."""
    docs = render(variant)
    metrics, dashboard = EXPECTED_HTTP_PORTS[variant]
    loaded = load_rendered_config(docs, tmp_path)
    assert loaded.metrics_listen == (f"0.0.0.0:{metrics}" if metrics else "")
    assert loaded.dashboard_listen == (f"0.0.0.0:{dashboard}" if dashboard else "")
    ports = {p["name"]: p["containerPort"] for p in only_container(scheduler_deployment(docs))["ports"]}
    assert loaded.listen == f"0.0.0.0:{ports['grpc']}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_pod_disruption_budget(variant):
    docs = render(variant)
    pdbs = component(docs, "PodDisruptionBudget", "scheduler")
    assert len(pdbs) == 1
    pdb = pdbs[0]
    assert pdb["metadata"]["name"] == SCHEDULER
    assert pdb["spec"] == {"maxUnavailable": EXPECTED_PDB[variant], "selector": pdb["spec"]["selector"]}
    # it guards the scheduler pod and nothing else
    assert selects(pdb["spec"]["selector"], scheduler_deployment(docs)["spec"]["template"]["metadata"]["labels"])
    for agent in agent_deployments(docs).values():
        assert not selects(pdb["spec"]["selector"], agent["spec"]["template"]["metadata"]["labels"])


def test_scheduler_pod_disruption_budget_can_be_off():
    docs = rendered(template(sets=("scheduler.podDisruptionBudget.enabled=false",)))
    assert component(docs, "PodDisruptionBudget", "scheduler") == []
    assert len(component(docs, "PodDisruptionBudget", "agent")) == 1


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_probes(variant):
    c = only_container(scheduler_deployment(render(variant)))
    for probe in ("readinessProbe", "livenessProbe"):
        p = c[probe]
        if variant in ("multisite", "production"):
            # TLS on with the default tlsProbe=tcp: the kubelet's plaintext
            # gRPC probe cannot talk to a TLS server, so a TCP check is used.
            assert p["tcpSocket"] == {"port": "grpc"}
            assert "grpc" not in p
        elif variant == "tls-inline":
            assert p["grpc"] == {"port": 50051, "mode": "TLS"}
        else:
            assert p["grpc"] == {"port": 50051}
            assert "tcpSocket" not in p


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_service(variant):
    docs = render(variant)
    services = component(docs, "Service", "scheduler")
    assert len(services) == 1
    svc = services[0]
    assert svc["metadata"]["name"] == SCHEDULER
    assert svc["metadata"]["labels"]["powerplane.io/metrics-job"] == "powerplane-scheduler"
    assert svc["spec"]["type"] == "ClusterIP"
    metrics, dashboard = EXPECTED_HTTP_PORTS[variant]
    want = [{"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}]
    if metrics:
        want.append({"name": "metrics", "port": metrics, "targetPort": "metrics", "protocol": "TCP"})
    if dashboard:
        want.append({"name": "http", "port": dashboard, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"})
    assert svc["spec"]["ports"] == want
    # every target port is a named port of the scheduler container
    container_ports = {p["name"] for p in only_container(scheduler_deployment(docs))["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= container_ports
    pod_labels = scheduler_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    # the selector must not also pick agent pods
    for agent in agent_deployments(docs).values():
        agent_labels = agent["spec"]["template"]["metadata"]["labels"]
        assert not svc["spec"]["selector"].items() <= agent_labels.items()


def test_default_scheduler_config_and_tokens():
    docs = render("default")
    assert scheduler_config(docs) == {
        "listen": "0.0.0.0:50051",
        "metrics_listen": "0.0.0.0:9464",
        "dashboard_listen": "0.0.0.0:8080",
        "database": "/var/lib/powerplane/powerplane.db",
        "regions": ["us", "eu"],
        "site_timeout_s": 30,
        "heartbeat_interval_s": 5,
        "schedule_interval_s": 1.0,
        "hashprice_usd_per_ph_day": 45,
        "mining": {
            "margin_usd_per_mwh": 0, "hysteresis_usd_per_mwh": 2, "min_on_s": 300, "min_off_s": 300, "resume_mw_per_min": 10, "resume_step_s": 30,
            "policy": "breakeven", "warmup_s": 300, "peak_strike_usd_per_mwh": 70, "peak_before_day_ahead_h": 1, "peak_after_day_ahead_h": 1.5, "peak_start_h": 18.5, "peak_end_h": 20.5, "timezone": "America/Chicago",
        },
        "power_interval_s": 1.0,
        "cap_lead_s": 10,
        "tokens_file": "/etc/powerplane/tokens/tokens.yaml",
        "config_watch_s": 0,
    }
    tokens = tokens_file(docs)
    assert set(tokens) == {"tenants", "operators", "sites"}
    assert set(tokens["tenants"]) == {"acme", "globex"}
    assert set(tokens["operators"]) == {"ops"}
    assert set(tokens["sites"]) == {"us-1"}
    for group in tokens.values():
        for token in group.values():
            assert isinstance(token, str) and token and "CHANGE-ME" in token


def test_multisite_scheduler_config_tls():
    docs = render("multisite")
    cfg = scheduler_config(docs)
    assert cfg["tls"] == {
        "cert_file": "/etc/powerplane/tls/tls.crt",
        "key_file": "/etc/powerplane/tls/tls.key",
    }
    assert cfg["regions"] == ["us", "eu"]
    assert cfg["tokens_file"] == "/etc/powerplane/tokens/tokens.yaml"
    dep = scheduler_deployment(docs)
    tls = volume_at(dep, "/etc/powerplane/tls")["secret"]
    assert tls["secretName"] == "powerplane-scheduler-tls"
    assert {i["key"] for i in tls["items"]} == {"tls.crt", "tls.key"}
    tok = volume_at(dep, "/etc/powerplane/tokens")["secret"]
    assert tok["secretName"] == "powerplane-tokens"
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"node-role.powerplane.io/control": "true"}


def test_multisite_creates_no_secrets():
    docs = render("multisite")
    assert of_kind(docs, "Secret") == []  # existingSecret: the chart makes none
    assert len(of_kind(docs, "Deployment")) == 1 + len(MULTISITE_SITES)
    # scheduler.yaml, one site config per site with a power profile, the dashboard
    assert set(MULTISITE_POWER) == {"us-tx-1", "eu-no-1"}
    assert len(of_kind(docs, "ConfigMap")) == 1 + len(MULTISITE_POWER) + 1


def test_config_watch_mounts_the_configmap_as_a_directory_and_rolls_only_for_restarts(tmp_path):
    """configWatchSeconds: scheduler.yaml `config_watch_s`, the ConfigMap mounted without
    subPath (the kubelet then updates the file; docs/reload.md), and `checksum/config` moves
    only with values a reload refuses: mining is reloaded live, the port needs a restart."""

    def watching(*sets):
        return rendered(template(sets=("scheduler.configWatchSeconds=15", *sets)))

    docs = watching()
    dep = scheduler_deployment(docs)
    assert only_container(dep)["args"] == ["scheduler", "--config", "/etc/powerplane/config/scheduler.yaml"]
    cfg_mount = mounts(dep)["/etc/powerplane/config"]
    assert "subPath" not in cfg_mount and cfg_mount["readOnly"] is True
    assert volumes(dep)[cfg_mount["name"]]["configMap"]["items"] == [{"key": "scheduler.yaml", "path": "scheduler.yaml"}]
    assert "/etc/powerplane/scheduler.yaml" not in mounts(dep)
    assert scheduler_config(docs)["config_watch_s"] == 15
    assert load_rendered_config(docs, tmp_path).config_watch_s == 15

    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/tokens" not in annotations  # tokens.yaml is reloaded from the Secret's updated file

    def checksum(*sets):
        return scheduler_deployment(watching(*sets))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum("scheduler.power.mining.marginUsdPerMwh=5") == annotations["checksum/config"]
    assert checksum("scheduler.port=50052") != annotations["checksum/config"]
    assert checksum("scheduler.siteTimeoutSeconds=40") != annotations["checksum/config"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_config_and_tokens_load_in_the_real_scheduler(variant, tmp_path):
    """The ConfigMap and tokens Secret the chart renders are accepted by load_config."""
    loaded = load_rendered_config(render(variant), tmp_path)
    assert loaded.listen.endswith(":50051")
    assert set(loaded.regions) >= {"us", "eu"}
