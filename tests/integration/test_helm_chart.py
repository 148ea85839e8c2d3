"""The Helm chart as a whole: helm 3, `helm lint --strict` for every values
file, deterministic renders, every rendered object valid for the two newest
Kubernetes versions kubernetes-validate knows (strict: unknown fields are
errors), the kinds rendered, values the chart must refuse, and every
container command line parsed by the real `powerplane` CLI.

Plumbing and the value variants are in helm_support.py.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import major_minor

from tests.integration.helm_support import (
    CHART,
    K8S_VERSIONS,
    MULTISITE_VALUES,
    NAMESPACE,
    PRODUCTION_VALUES,
    RELEASE,
    VARIANTS,
    _rendered_text,
    _value_args,
    agent_deployments,
    component,
    of_kind,
    only_container,
    render,
    run_helm,
    template,
    validation_errors,
)

# K8S_VERSIONS (the two newest Kubernetes versions kubernetes-validate knows)
# and validation_errors (which leaves out the Prometheus Operator's CRDs) are
# in helm_support.py, shared with test_helm_ha.py.

# tls-inline asks for the native gRPC probe over TLS (scheduler.probes.tlsProbe:
# grpc), whose `mode: TLS` Kubernetes has from 1.37 on (values.yaml says so);
# older versions must refuse exactly that field, nothing else.
NEEDS_GRPC_PROBE_TLS = {"tls-inline"}
GRPC_PROBE_TLS_SINCE = (1, 37)

# Every values file on its own, and the variants (which layer them).
LINT_CASES = {
    **{name: (spec["values"], spec["sets"]) for name, spec in VARIANTS.items()},
    "values-multisite.yaml alone": ((MULTISITE_VALUES,), ()),
    "values-production.yaml alone": ((PRODUCTION_VALUES,), ()),
}


def test_helm_is_helm3():
    result = run_helm("version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("v3."), result.stdout


@pytest.mark.parametrize("case", sorted(LINT_CASES))
def test_lint_strict(case):
    values, sets = LINT_CASES[case]
    result = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *_value_args(values, sets))
    assert result.returncode == 0, f"helm lint --strict failed:\n{result.stdout}\n{result.stderr}"
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_render_is_deterministic(variant):
    spec = VARIANTS[variant]
    again = template(spec["values"], spec["sets"])
    assert again.returncode == 0, again.stderr
    assert again.stdout == _rendered_text(variant)


def test_two_newest_kubernetes_versions():
    assert len(K8S_VERSIONS) == 2 and K8S_VERSIONS[-1] == major_minor(kubernetes_validate.latest_version())


@pytest.mark.parametrize("k8s", K8S_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kubernetes_validate_strict(variant, k8s):
    errors, checked = validation_errors(render(variant), k8s)
    if variant in NEEDS_GRPC_PROBE_TLS and tuple(int(x) for x in k8s.split(".")) < GRPC_PROBE_TLS_SINCE:
        assert errors and all(e.startswith("Deployment/powerplane-scheduler: ") and "Probe.grpc" in e and "'mode' was unexpected" in e for e in errors), errors
        return
    assert not errors, f"invalid objects for Kubernetes {k8s} (strict):\n" + "\n".join(errors)
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= checked


def test_production_renders_every_optional_kind():
    kinds = {d["kind"] for d in render("production")}
    assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PriorityClass", "PodDisruptionBudget"} <= kinds
    assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PriorityClass"}.isdisjoint({d["kind"] for d in render("default")})


def test_default_render_kinds_and_counts():
    docs = render("default")
    counts = {}
    for d in docs:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    assert counts == {
        "ServiceAccount": 1,
        "ConfigMap": 2,  # scheduler.yaml + the Grafana dashboard
        "Secret": 2,  # tokens.yaml + the one site's agent token
        "PersistentVolumeClaim": 1,
        "Service": 2,  # scheduler + the agent's (metrics)
        "Deployment": 2,  # scheduler + one agent
        "PodDisruptionBudget": 2,  # scheduler + one agent
    }
    assert len(component(docs, "Deployment", "scheduler")) == 1
    assert set(agent_deployments(docs)) == {"us-1"}
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "powerplane"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "powerplane-0.1.0"


# --------------------------------------------------------------------------
# renders that must fail


EMPTY_TOKEN_MESSAGE = (
    "tokens.tenants.acme is empty: set a token in values, or set tokens.existingSecret to a Secret you created (the chart generates no tokens)"
)


def test_empty_token_without_existing_secret_fails():
    result = template(sets=("tokens.tenants.acme=",))
    assert result.returncode != 0, "render with an empty token must fail"
    assert EMPTY_TOKEN_MESSAGE in result.stderr, result.stderr
    assert result.stdout.strip() == ""


def test_empty_site_token_fails():
    result = template(sets=("tokens.sites.us-1=",))
    assert result.returncode != 0
    assert "tokens.sites.us-1 is empty" in result.stderr, result.stderr


def test_empty_token_with_existing_secret_renders():
    result = template(sets=("tokens.tenants.acme=", "tokens.existingSecret=my-tokens"))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert of_kind(docs, "Secret") == []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("scheduler.service.port=70000",), "scheduler.service.port: Must be less than or equal to 65535"),
        (("scheduler.port=0",), "scheduler.port: Must be greater than or equal to 1"),
        (("sites[0].id=us-1",), "sites.0: region is required"),
        (("scheduler.regions={eu}",), 'site "us-1" has region "us", which is not in scheduler.regions'),
        (("scheduler.tls.enabled=true",), "scheduler.tls.secretName is empty"),
        (("sitez=1",), "Additional property sitez is not allowed"),
        (("tokens.tenants.acme=short",), "tokens.tenants.acme: Does not match pattern"),
        (("scheduler.metrics.port=50051",), "scheduler.metrics.port: port 50051 is already scheduler.port"),
        (("scheduler.dashboard.port=9464",), "scheduler.metrics.port: port 9464 is already scheduler.dashboard.port"),
        (("agent.metrics.port=0",), "agent.metrics.port: Must be greater than or equal to 1"),
        (("agent.podDisruptionBudget.maxUnavailable=2",), "agent.podDisruptionBudget.maxUnavailable: Must be less than or equal to 1"),
        (("agent.priorityClass.value=2000000000",), "agent.priorityClass.value: Must be less than or equal to 1e+09"),
        (("agent.priorityClassName=Not_A_Name",), "agent.priorityClassName: Does not match pattern"),
        (("metrics.serviceMonitor.interval=half-a-minute",), "metrics.serviceMonitor.interval: Does not match pattern"),
        (("networkPolicy.enabled=true",), "networkPolicy.agent.extraEgress is empty"),
        (("grafana.dashboard.label=",), "grafana.dashboard.label: String length must be greater than or equal to 1"),
    ],
)
def test_invalid_values_fail(sets, message):
    result = template(sets=sets)
    assert result.returncode != 0, f"render with {sets} must fail"
    assert message in result.stderr, result.stderr


# --------------------------------------------------------------------------
# the programs' own command lines


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_commands_parse_with_the_real_cli(variant):
    """Every container's command line is one `powerplane` accepts."""
    from scheduler.cli.main import _parser

    for dep in of_kind(render(variant), "Deployment"):
        container = only_container(dep)
        argv = list(container.get("command", [])) + list(container.get("args", []))
        assert argv[0] == "powerplane", argv
        args = _parser().parse_args(argv[1:])
        assert args.command in ("scheduler", "agent")
