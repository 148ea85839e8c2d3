"""The Helm chart as a whole: helm 3, `helm lint --strict`, deterministic
renders, every rendered object valid for Kubernetes (kubernetes-validate,
strict), the kinds rendered, values the chart must refuse, and every
container command line parsed by the real `powerplane` CLI.

Plumbing and the value variants are in helm_support.py.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.integration.helm_support import (
    CHART,
    NAMESPACE,
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
)

# The newest Kubernetes version the installed kubernetes-validate has schemas for.
K8S_VERSION = kubernetes_validate.latest_version()


def test_helm_is_helm3():
    result = run_helm("version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("v3."), result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_strict(variant):
    spec = VARIANTS[variant]
    result = run_helm(
        "lint",
        "--strict",
        str(CHART),
        "--namespace",
        NAMESPACE,
        *_value_args(spec["values"], spec["sets"]),
    )
    assert result.returncode == 0, f"helm lint --strict failed:\n{result.stdout}\n{result.stderr}"
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_render_is_deterministic(variant):
    spec = VARIANTS[variant]
    again = template(spec["values"], spec["sets"])
    assert again.returncode == 0, again.stderr
    assert again.stdout == _rendered_text(variant)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kubernetes_validate_strict(variant):
    errors = []
    for doc in render(variant):
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            used = kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{name}: {path}: {e.message}")
            continue
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
            continue
        assert used == kubernetes_validate.utils.major_minor(K8S_VERSION), (name, used)
    assert not errors, f"invalid objects for Kubernetes {K8S_VERSION} (strict):\n" + "\n".join(errors)


def test_default_render_kinds_and_counts():
    docs = render("default")
    counts = {}
    for d in docs:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    assert counts == {
        "ServiceAccount": 1,
        "ConfigMap": 1,
        "Secret": 2,  # tokens.yaml + the one site's agent token
        "PersistentVolumeClaim": 1,
        "Service": 1,
        "Deployment": 2,  # scheduler + one agent
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
    ],
)
def test_invalid_values_fail(sets, message):
    result = template(sets=sets)
    assert result.returncode != 0, f"render with {sets} must fail"
    assert message in result.stderr, result.stderr


# --------------------------------------------------------------------------
# the chart speaks the programs' own formats


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
