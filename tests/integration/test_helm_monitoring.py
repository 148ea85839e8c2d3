"""Monitoring objects of the chart: the ServiceMonitor and PrometheusRule
(Prometheus Operator CRDs, which kubernetes-validate has no schema for, so
their fields are checked here), the Grafana dashboard ConfigMap and the
dashboard itself (structure, and every metric its queries read is one the
scheduler or the agent exports), and the NetworkPolicies.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.exported_metrics import exported_metric_names
from tests.integration.helm_support import (
    ALERT_RULES,
    DASHBOARD,
    MULTISITE_VALUES,
    NAMESPACE,
    PRODUCTION_VALUES,
    VARIANTS,
    agent_deployments,
    component,
    of_kind,
    only_container,
    promql_metric_names,
    render,
    rendered,
    scheduler_deployment,
    selects,
    template,
    unknown_metrics,
    write_values,
)

PRODUCTION = yaml.safe_load(PRODUCTION_VALUES.read_text())

# Fields of the monitoring.coreos.com/v1 CRDs the chart may use (a subset of
# the Operator's schemas: enough to catch a misspelt or misplaced field).
SERVICE_MONITOR_SPEC = {"jobLabel", "targetLabels", "podTargetLabels", "endpoints", "selector", "namespaceSelector", "sampleLimit"}
SERVICE_MONITOR_ENDPOINT = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings", "metricRelabelings"}
RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _service_labels(docs) -> dict[str, dict]:
    return {svc["metadata"]["name"]: svc["metadata"]["labels"] for svc in of_kind(docs, "Service")}


def _pod_labels(dep: dict) -> dict:
    return dep["spec"]["template"]["metadata"]["labels"]


# --------------------------------------------------------------------------
# ServiceMonitor


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_service_monitor_only_when_enabled(variant):
    monitors = of_kind(render(variant), "ServiceMonitor")
    assert len(monitors) == (1 if variant == "production" else 0)


def test_service_monitor_scrapes_the_scheduler_and_every_agent():
    docs = render("production")
    (sm,) = of_kind(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["namespace"] == NAMESPACE
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = sm["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC, set(spec) - SERVICE_MONITOR_SPEC
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT, set(endpoint) - SERVICE_MONITOR_ENDPOINT
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])

    # It selects exactly the scheduler's Service and the agents' Services ...
    services = _service_labels(docs)
    chosen = {name for name, labels in services.items() if selects(spec["selector"], labels)}
    agents = {dep["metadata"]["name"] for dep in agent_deployments(docs).values()}
    assert chosen == {"powerplane-scheduler"} | agents
    # ... each with a port named like the endpoint's
    for svc in of_kind(docs, "Service"):
        if svc["metadata"]["name"] in chosen:
            assert "metrics" in {p["name"] for p in svc["spec"]["ports"]}, svc["metadata"]["name"]
    # ... and names the jobs after their jobLabel: the names the alert rules use.
    jobs = {services[name][spec["jobLabel"]] for name in chosen}
    assert jobs == {"powerplane-scheduler", "powerplane-agent"}
    rule_jobs = set(re.findall(r'job="([^"]+)"', ALERT_RULES.read_text()))
    assert rule_jobs == jobs


def test_service_monitor_in_another_namespace_still_looks_in_the_release_namespace():
    docs = rendered(template(sets=("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.namespace=monitoring")))
    (sm,) = of_kind(docs, "ServiceMonitor")
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


# --------------------------------------------------------------------------
# PrometheusRule


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prometheus_rule_only_when_enabled(variant):
    rules = of_kind(render(variant), "PrometheusRule")
    assert len(rules) == (1 if variant == "production" else 0)


def test_prometheus_rule_is_the_rule_file_verbatim():
    (rule,) = of_kind(render("production"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load(ALERT_RULES.read_text())
    groups = rule["spec"]["groups"]
    assert groups and set(rule["spec"]) == {"groups"}
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"] and group["rules"]
        for r in group["rules"]:
            assert set(r) <= RULE_FIELDS, set(r) - RULE_FIELDS
            assert r["alert"] and r["expr"].strip()
            assert "for" not in r or DURATION.match(r["for"])


# --------------------------------------------------------------------------
# Grafana dashboard ConfigMap


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_dashboard_config_map(variant):
    docs = render(variant)
    maps = [cm for cm in of_kind(docs, "ConfigMap") if "grafana_dashboard" in cm["metadata"]["labels"]]
    if variant == "tls-inline":  # grafana.dashboard.enabled=false
        assert maps == []
        return
    (cm,) = maps
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == ("monitoring" if variant == "production" else NAMESPACE)
    if variant == "production":
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Powerplane"}
    assert set(cm["data"]) == {"powerplane-power.json"}
    assert json.loads(cm["data"]["powerplane-power.json"]) == json.loads(DASHBOARD.read_text())


def test_dashboard_sidecar_label_is_configurable():
    docs = rendered(template(sets=("grafana.dashboard.label=dashboards", "grafana.dashboard.labelValue=powerplane")))
    (cm,) = [cm for cm in of_kind(docs, "ConfigMap") if "dashboards" in cm["metadata"]["labels"]]
    assert cm["metadata"]["labels"]["dashboards"] == "powerplane"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]


# --------------------------------------------------------------------------
# the dashboard itself


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def _queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target, annotation and template variable."""
    out = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            out.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            out.append((f"variable {variable['name']!r}", query["query"] if isinstance(query, dict) else query))
    return out


def test_dashboard_variables_and_datasource():
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 39 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    site = variables["site"]
    assert site["query"]["query"] == site["definition"] == "label_values(powerplane_site_cap_watts, site)"
    assert site["multi"] and site["includeAll"]
    # every query goes to the chosen Prometheus
    for panel in _panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"]["uid"] == "${datasource}"


def test_dashboard_layout():
    panels = _panels(_dashboard())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, p["title"]
        if p["type"] != "row":
            assert p.get("description"), f"panel {p['title']!r} has no description"
            for target in p["targets"]:
                assert target["expr"].strip() and target["refId"]


def test_dashboard_power_panel_stacks_under_the_cap():
    (panel,) = [p for p in _panels(_dashboard()) if "powerplane_site_cap_watts" in json.dumps(p.get("targets", []))]
    legends = {t["legendFormat"]: t["expr"] for t in panel["targets"]}
    metrics = {name for expr in legends.values() for name in promql_metric_names(expr)}
    assert metrics == {"powerplane_site_ai_it_watts", "powerplane_site_mining_it_watts", "powerplane_site_overhead_watts", "powerplane_site_cap_watts"}
    assert panel["type"] == "timeseries" and panel["fieldConfig"]["defaults"]["unit"] == "watt"
    assert panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert panel["repeat"] == "site"
    # the cap: its own unstacked line, by an override on its legend name
    cap = next(legend for legend, expr in legends.items() if "powerplane_site_cap_watts" in expr)
    (override,) = [o for o in panel["fieldConfig"]["overrides"] if o["matcher"] == {"id": "byName", "options": cap}]
    props = {p["id"]: p["value"] for p in override["properties"]}
    assert props["custom.stacking"]["mode"] == "none" and props["custom.fillOpacity"] == 0


def test_dashboard_covers_the_issue():
    """Price, grid events (annotations), jobs by state, response latency,
    fleets measured vs target, agents, preemptions, scheduler passes."""
    dashboard = _dashboard()
    exprs = [expr for _, expr in _queries(dashboard)]
    wanted = [
        "powerplane_site_price_usd_per_mwh",
        "sum by (state) (powerplane_jobs)",
        "histogram_quantile(0.95, sum by (le, step) (rate(powerplane_grid_event_response_seconds_bucket[$__rate_interval])))",
        "powerplane_fleet_measured_watts",
        "powerplane_fleet_target_watts",
        "powerplane_agent_connected",
        "powerplane_agent_heartbeat_age_seconds",
        "powerplane_preemptions_total",
        "powerplane_scheduler_pass_seconds_bucket",
    ]
    for want in wanted:
        assert any(want in expr for expr in exprs), f"no dashboard query has {want}"
    annotations = [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    assert any("powerplane_grid_events_active" in a for a in annotations)


def test_dashboard_reads_only_exported_metrics():
    """Every metric a dashboard query reads is one the scheduler or an agent
    exports (a histogram's _bucket series counts as its own)."""
    exported = exported_metric_names()
    problems = []
    for where, expr in _queries(_dashboard()):
        names = promql_metric_names(expr)
        if not names:
            problems.append(f"{where}: no metric found in {expr!r}")
        for name in sorted(unknown_metrics(names, exported)):
            problems.append(f"{where}: {name} is not exported ({expr!r})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("histogram_quantile(0.95, sum by (le, step) (rate(a_seconds_bucket[$__rate_interval])))", {"a_seconds_bucket"}),
        ('a{site=~"$site", x="rate(b)"} > on (site) group_left (fleet) c offset 5m', {"a", "c"}),
        ("sum without (le) (rate(x_total[5m:1m])) / 1e3 and bool_metric", {"x_total", "bool_metric"}),
        ("count(z) by (site) + max(y{a='b'})", {"z", "y"}),
        ("label_values(powerplane_site_cap_watts, site)", {"powerplane_site_cap_watts"}),
        ("label_values(site)", set()),
        ('label_values(up{job="a", x="b"}, instance)', {"up"}),
        ("changes(a:rule:rate5m[1m]) > 0", {"a:rule:rate5m"}),
    ],
)
def test_promql_metric_names(expr, names):
    assert promql_metric_names(expr) == names


# --------------------------------------------------------------------------
# NetworkPolicies


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_network_policies_only_when_enabled(variant):
    assert len(of_kind(render(variant), "NetworkPolicy")) == (2 if variant == "production" else 0)


def _policies(docs) -> tuple[dict, dict]:
    (sched,) = component(docs, "NetworkPolicy", "scheduler")
    (agent,) = component(docs, "NetworkPolicy", "agent")
    return sched, agent


def _port_rule(rules: list[dict], port: int) -> dict:
    found = [r for r in rules if {"port": port, "protocol": "TCP"} in r.get("ports", [])]
    assert len(found) == 1, f"expected one rule for port {port}: {rules}"
    return found[0]


def test_agent_network_policy():
    """Only the metrics port reaches an agent, from metricsFrom; agents reach
    the scheduler's gRPC port, DNS and the extra egress, nothing else."""
    docs = render("production")
    _, policy = _policies(docs)
    spec = policy["spec"]
    agents = agent_deployments(docs)
    assert all(selects(spec["podSelector"], _pod_labels(dep)) for dep in agents.values())
    assert not selects(spec["podSelector"], _pod_labels(scheduler_deployment(docs)))
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    metrics_port = only_container(next(iter(agents.values())))["ports"][0]["containerPort"]
    assert spec["ingress"] == [{"ports": [{"port": metrics_port, "protocol": "TCP"}], "from": PRODUCTION["networkPolicy"]["metricsFrom"]}]

    egress = spec["egress"]
    to_scheduler = _port_rule(egress, 50051)
    (peer,) = to_scheduler["to"]
    assert selects(peer["podSelector"], _pod_labels(scheduler_deployment(docs)))
    assert not any(selects(peer["podSelector"], _pod_labels(dep)) for dep in agents.values())
    dns = [r for r in egress if {"port": 53, "protocol": "UDP"} in r.get("ports", [])]
    assert len(dns) == 1 and {"port": 53, "protocol": "TCP"} in dns[0]["ports"]
    assert dns[0]["to"] == PRODUCTION["networkPolicy"]["agent"]["dns"]
    extra = PRODUCTION["networkPolicy"]["agent"]["extraEgress"]
    assert egress == [to_scheduler, dns[0], *extra]


def test_network_policies_use_pod_ports_not_service_ports():
    """Policies act on pod ports: with the Service on 443 the rules still name
    the scheduler container's gRPC port."""
    docs = rendered(template(values=(MULTISITE_VALUES, PRODUCTION_VALUES), sets=("scheduler.service.port=443",)))
    sched, agent = _policies(docs)
    assert _port_rule(agent["spec"]["egress"], 50051)["to"][0]["podSelector"]
    assert _port_rule(sched["spec"]["ingress"], 50051)
    assert not [r for r in agent["spec"]["egress"] + sched["spec"]["ingress"] if {"port": 443, "protocol": "TCP"} in r.get("ports", [])]


def test_scheduler_network_policy():
    """Every scheduler port has its rule: gRPC from the agents and grpcFrom,
    metrics from metricsFrom, the dashboard from dashboardFrom."""
    docs = render("production")
    policy, _ = _policies(docs)
    spec = policy["spec"]
    dep = scheduler_deployment(docs)
    assert selects(spec["podSelector"], _pod_labels(dep))
    assert not any(selects(spec["podSelector"], _pod_labels(a)) for a in agent_deployments(docs).values())
    assert spec["policyTypes"] == ["Ingress"]
    ports = {p["name"]: p["containerPort"] for p in only_container(dep)["ports"]}
    assert len(spec["ingress"]) == len(ports) == 3
    np = PRODUCTION["networkPolicy"]
    grpc = _port_rule(spec["ingress"], ports["grpc"])
    agents_peer, *others = grpc["from"]
    assert all(selects(agents_peer["podSelector"], _pod_labels(a)) for a in agent_deployments(docs).values())
    assert others == np["grpcFrom"]
    assert _port_rule(spec["ingress"], ports["metrics"])["from"] == np["metricsFrom"]
    assert _port_rule(spec["ingress"], ports["http"])["from"] == np["dashboardFrom"]


def test_network_policy_open_sources_and_open_egress(tmp_path):
    """Empty peer lists mean any source (no `from`); restrictEgress false
    leaves agent egress alone."""
    values = {
        "networkPolicy": {"enabled": True, "metricsFrom": [], "agent": {"restrictEgress": False}},
        "scheduler": {"dashboard": {"enabled": False}},
    }
    docs = rendered(template(values=(write_values(tmp_path, values),)))
    sched, agent = _policies(docs)
    assert sched["spec"]["ingress"] == [{"ports": [{"port": 50051, "protocol": "TCP"}]}, {"ports": [{"port": 9464, "protocol": "TCP"}]}]
    assert agent["spec"]["policyTypes"] == ["Ingress"] and "egress" not in agent["spec"]
    assert agent["spec"]["ingress"] == [{"ports": [{"port": 9465, "protocol": "TCP"}]}]
