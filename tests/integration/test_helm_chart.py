"""Checks of the Helm chart in helm/powerplane with a real `helm` binary.

Lints the chart, renders it with the default values and with
helm/values-multisite.yaml, checks the rendered objects, and validates every
one of them against the Kubernetes OpenAPI schemas shipped by
`kubernetes-validate` in strict mode (unknown fields are errors).

helm is looked up as: $POWERPLANE_HELM, else <repo>/.tools/node_modules/.bin/helm
(what scripts/install_helm.sh installs), else `helm` on PATH. No network is
used: `helm lint` and `helm template` work offline on a local chart.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "powerplane"
MULTISITE_VALUES = REPO / "helm" / "values-multisite.yaml"
LOCAL_HELM = REPO / ".tools" / "node_modules" / ".bin" / "helm"

RELEASE = "powerplane"
NAMESPACE = "powerplane"
SCHEDULER = "powerplane-scheduler"  # <fullname>-scheduler; fullname == release here

# The newest Kubernetes version the installed kubernetes-validate has schemas for.
K8S_VERSION = kubernetes_validate.latest_version()

MULTISITE_SITES = {"us-tx-1": "us", "us-oh-1": "us", "eu-no-1": "eu"}

# A third variant exercising the other branches: TLS with inline tokens, the
# native gRPC probe in TLS mode, no persistence, two sites, imagePullSecrets.
TLS_INLINE_SETS = (
    "scheduler.tls.enabled=true",
    "scheduler.tls.secretName=pp-tls",
    "scheduler.probes.tlsProbe=grpc",
    "scheduler.persistence.enabled=false",
    "imagePullSecrets[0].name=regcred",
    "sites[0].id=us-1",
    "sites[0].region=us",
    "sites[0].rayAddress=http://ray-head-svc.ray.svc:8265",
    "sites[0].gpuModel=H100",
    "sites[1].id=EU_West.2",
    "sites[1].region=eu",
    "sites[1].rayAddress=ray://ray-head.eu:10001",
    "sites[1].gpuModel=A100",
    "sites[1].raySiteResource=site_eu_west_2",
    "tokens.sites.EU_West\\.2=eu-west-2-token-0123",
)

VARIANTS = {
    "default": {"values": (), "sets": ()},
    "multisite": {"values": (MULTISITE_VALUES,), "sets": ()},
    "tls-inline": {"values": (), "sets": TLS_INLINE_SETS},
}


# --------------------------------------------------------------------------
# helm plumbing


def _setup_hint() -> str:
    return f"no helm binary found: run `scripts/install_helm.sh` (installs helm into {LOCAL_HELM}), or set POWERPLANE_HELM=/path/to/helm"


@functools.lru_cache(maxsize=None)
def _helm_lookup() -> str | None:
    env = os.environ.get("POWERPLANE_HELM")
    if env:
        return env
    if LOCAL_HELM.exists() and os.access(LOCAL_HELM, os.X_OK):
        return str(LOCAL_HELM)
    return shutil.which("helm")


@functools.lru_cache(maxsize=None)
def _helm_home() -> str:
    # Keep helm's cache/config/data out of the user's home and off the network.
    home = tempfile.mkdtemp(prefix="powerplane-helm-test-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def helm_bin() -> str:
    """The helm binary; FAILS (not skips) the calling test when there is none."""
    helm = _helm_lookup()
    if helm is None:
        pytest.fail(_setup_hint(), pytrace=False)
    if not (os.path.isfile(helm) and os.access(helm, os.X_OK)):
        pytest.fail(f"POWERPLANE_HELM={helm} is not an executable file. " + _setup_hint(), pytrace=False)
    return helm


def run_helm(*args: str) -> subprocess.CompletedProcess:
    home = _helm_home()
    env = dict(os.environ)
    env.update(
        HELM_CACHE_HOME=os.path.join(home, "cache"),
        HELM_CONFIG_HOME=os.path.join(home, "config"),
        HELM_DATA_HOME=os.path.join(home, "data"),
        KUBECONFIG=os.path.join(home, "no-kubeconfig"),
    )
    return subprocess.run([helm_bin(), *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def _value_args(values=(), sets=()) -> list[str]:
    args: list[str] = []
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def template(values=(), sets=()) -> subprocess.CompletedProcess:
    return run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_value_args(values, sets))


@functools.lru_cache(maxsize=None)
def _rendered_text(variant: str) -> str:
    spec = VARIANTS[variant]
    result = template(spec["values"], spec["sets"])
    assert result.returncode == 0, f"helm template ({variant}) failed:\n{result.stderr}"
    return result.stdout


def render(variant: str) -> list[dict]:
    """Every non-empty document `helm template` renders for a variant."""
    docs = [d for d in yaml.safe_load_all(_rendered_text(variant)) if d]
    assert docs, f"helm template ({variant}) rendered nothing"
    for doc in docs:
        assert isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc, doc
    return docs


# --------------------------------------------------------------------------
# helpers over rendered objects


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def component(docs: list[dict], kind: str, comp: str) -> list[dict]:
    return [d for d in of_kind(docs, kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == comp]


def scheduler_deployment(docs):
    deps = component(docs, "Deployment", "scheduler")
    assert len(deps) == 1, f"expected 1 scheduler Deployment, got {len(deps)}"
    return deps[0]


def agent_deployments(docs) -> dict[str, dict]:
    """Agent Deployments keyed by the --site argument they run with."""
    out = {}
    for dep in component(docs, "Deployment", "agent"):
        args = only_container(dep)["args"]
        assert args.count("--site") == 1, args
        site = args[args.index("--site") + 1]
        assert site not in out, f"two agent Deployments for site {site}"
        out[site] = dep
    return out


def only_container(dep: dict) -> dict:
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def arg_value(args: list[str], flag: str) -> str | None:
    if flag not in args:
        return None
    assert args.count(flag) == 1, f"{flag} given twice: {args}"
    return args[args.index(flag) + 1]


def volumes(dep: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}


def mounts(dep: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in only_container(dep).get("volumeMounts", [])}


def volume_at(dep: dict, mount_path: str) -> dict:
    mount = mounts(dep).get(mount_path)
    assert mount is not None, f"nothing mounted at {mount_path}"
    return volumes(dep)[mount["name"]]


def secret_data(secret: dict) -> dict[str, str]:
    assert "data" not in secret, "chart Secrets use stringData"
    return secret["stringData"]


def tokens_file(docs) -> dict:
    secret = by_name(docs, "Secret", "powerplane-tokens")
    data = secret_data(secret)
    assert set(data) == {"tokens.yaml"}
    return yaml.safe_load(data["tokens.yaml"])


def scheduler_config(docs) -> dict:
    cm = by_name(docs, "ConfigMap", SCHEDULER)
    return yaml.safe_load(cm["data"]["scheduler.yaml"])


# --------------------------------------------------------------------------
# tests


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
def test_scheduler_probes(variant):
    c = only_container(scheduler_deployment(render(variant)))
    for probe in ("readinessProbe", "livenessProbe"):
        p = c[probe]
        if variant == "multisite":
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
    services = of_kind(docs, "Service")
    assert len(services) == 1
    svc = services[0]
    assert svc["metadata"]["name"] == SCHEDULER
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}]
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
        "database": "/var/lib/powerplane/powerplane.db",
        "regions": ["us", "eu"],
        "site_timeout_s": 30,
        "heartbeat_interval_s": 5,
        "schedule_interval_s": 1.0,
        "tokens_file": "/etc/powerplane/tokens/tokens.yaml",
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


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_config_and_tokens_load_in_the_real_scheduler(variant, tmp_path):
    """The ConfigMap and tokens Secret the chart renders are accepted by load_config."""
    from scheduler.server.config import load_config

    docs = render(variant)
    config = scheduler_config(docs)
    secrets_of = {d["metadata"]["name"]: secret_data(d) for d in of_kind(docs, "Secret")}
    tokens = (
        yaml.safe_load(secrets_of["powerplane-tokens"]["tokens.yaml"])
        if "powerplane-tokens" in secrets_of
        else {"tenants": {"acme": "t" * 32}, "operators": {"ops": "o" * 32}, "sites": {}}
    )  # existingSecret: made by the user
    config["tokens_file"] = str(tmp_path / "tokens.yaml")
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump(tokens))
    if config.get("tls"):
        config["tls"] = {"cert_file": str(tmp_path / "tls.crt"), "key_file": str(tmp_path / "tls.key")}
    (tmp_path / "scheduler.yaml").write_text(yaml.safe_dump(config))
    loaded = load_config(tmp_path / "scheduler.yaml")
    assert loaded.listen.endswith(":50051")
    assert set(loaded.regions) >= {"us", "eu"}


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
