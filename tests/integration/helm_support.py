"""Shared plumbing of the Helm chart tests (tests/integration/test_helm_*.py).

Finds and runs a real `helm` binary, renders the chart in helm/powerplane for
named value variants (cached per variant), and offers small helpers over the
rendered objects. helm is looked up as: $POWERPLANE_HELM, else
<repo>/.tools/node_modules/.bin/helm (what scripts/install_helm.sh installs),
else `helm` on PATH; a missing helm FAILS the tests (it does not skip them).
No network is used: `helm lint` and `helm template` work offline on a local
chart.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "powerplane"
MULTISITE_VALUES = REPO / "helm" / "values-multisite.yaml"
PRODUCTION_VALUES = REPO / "helm" / "values-production.yaml"
HA_VALUES = REPO / "helm" / "values-ha.yaml"
ALERT_RULES = CHART / "files" / "alerts" / "powerplane.rules.yaml"
DASHBOARD = CHART / "files" / "dashboards" / "powerplane-power.json"
LOCAL_HELM = REPO / ".tools" / "node_modules" / ".bin" / "helm"

RELEASE = "powerplane"
NAMESPACE = "powerplane"
SCHEDULER = "powerplane-scheduler"  # <fullname>-scheduler; fullname == release here

MULTISITE_SITES = {"us-tx-1": "us", "us-oh-1": "us", "eu-no-1": "eu"}
# Site id -> its `power:` block, as written in values-multisite.yaml.
MULTISITE_POWER = {site["id"]: site["power"] for site in yaml.safe_load(MULTISITE_VALUES.read_text())["sites"] if site.get("power")}

# Where the chart mounts a powered site's --site-config file.
SITE_CONFIG_PATH = "/etc/powerplane/site-config/site.yaml"

# A third variant exercising the other branches: TLS with inline tokens, the
# native gRPC probe in TLS mode, no persistence, two sites, imagePullSecrets;
# no scheduler /metrics, the dashboard, the agents' metrics port elsewhere,
# priority classes named, no agent PDBs, no Grafana dashboard.
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
    # a power profile given with --set (whole numbers: --set turns 1.5 into a string)
    "sites[1].power.interconnect_cap_mw=5",
    "sites[1].power.cooling=hydro",
    "sites[1].power.market_node=DE-LU",
    "sites[1].power.fleets[0].fleet_id=xp-old",
    "sites[1].power.fleets[0].model=S19XP",
    "sites[1].power.fleets[0].count=200",
    "sites[1].power.fleets[0].ramp_down_s=3",
    "sites[1].power.fleets[0].ramp_up_s=3",
    "sites[1].power.fleets[0].standby_w=30",
    "scheduler.power.capLeadSeconds=20",
    "scheduler.power.mining.marginUsdPerMwh=-5",
    "scheduler.metrics.enabled=false",
    "scheduler.dashboard.port=8443",
    "scheduler.priorityClassName=powerplane-control",
    "scheduler.podDisruptionBudget.maxUnavailable=1",
    "agent.metrics.port=9100",
    "agent.priorityClassName=site-critical",
    "agent.podDisruptionBudget.enabled=false",
    "grafana.dashboard.enabled=false",
)

# "production": the example sites with helm/values-production.yaml on top
# (ServiceMonitor, PrometheusRule, NetworkPolicies, a PriorityClass, the
# dashboard in namespace monitoring).
VARIANTS = {
    "default": {"values": (), "sets": ()},
    "multisite": {"values": (MULTISITE_VALUES,), "sets": ()},
    "tls-inline": {"values": (), "sets": TLS_INLINE_SETS},
    "production": {"values": (MULTISITE_VALUES, PRODUCTION_VALUES), "sets": ()},
}

# Several scheduler replicas on PostgreSQL (test_helm_ha.py); kept out of
# VARIANTS, whose tests expect one scheduler on SQLite. "ha": values-ha.yaml
# alone (plaintext); "ha-production": layered over the multisite and
# production files (TLS, so the gRPC probe in TLS mode, Kubernetes 1.37+).
HA_VARIANTS = {
    "ha": {"values": (HA_VALUES,), "sets": ()},
    "ha-production": {"values": (MULTISITE_VALUES, PRODUCTION_VALUES, HA_VALUES), "sets": ()},
}

# Where the chart mounts the PostgreSQL DSN (store.postgres.dsn_file).
POSTGRES_DSN_PATH = "/etc/powerplane/postgres/dsn"


# The two newest Kubernetes minor versions the installed kubernetes-validate
# has schemas for (all_versions() lists some twice).
K8S_VERSIONS = sorted({major_minor(v) for v in all_versions()}, key=lambda v: tuple(int(x) for x in v.split(".")))[-2:]

# Prometheus Operator CRDs: kubernetes-validate has no schema for them, so
# they are left out of validation_errors and checked field by field in
# test_helm_monitoring.py.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def validation_errors(docs: list[dict], k8s: str) -> tuple[list[str], set[str]]:
    """Every rendered object validated (strict: unknown fields are errors) for
    Kubernetes `k8s`: the errors, one line each, and the kinds checked."""
    errors, checked = [], set()
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1", name
            continue
        try:
            used = kubernetes_validate.validate(doc, k8s, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{name}: {path}: {e.message}")
            continue
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
            continue
        assert used == k8s, (name, used)
        checked.add(doc["kind"])
    return errors, checked


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
    spec = VARIANTS[variant] if variant in VARIANTS else HA_VARIANTS[variant]
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


def load_rendered_config(docs, tmp_path: Path):
    """The rendered scheduler.yaml (and tokens.yaml), through the real load_config.

    Paths inside the pod (tokens, TLS, the PostgreSQL DSN) are pointed at
    files in tmp_path."""
    from scheduler.server.config import load_config

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
    postgres = (config.get("store") or {}).get("postgres")
    if postgres:  # load_config reads the DSN file: a Secret in the pod
        (tmp_path / "pg.dsn").write_text("host=db.invalid dbname=powerplane user=powerplane\n")
        postgres["dsn_file"] = str(tmp_path / "pg.dsn")
    (tmp_path / "scheduler.yaml").write_text(yaml.safe_dump(config))
    return load_config(tmp_path / "scheduler.yaml")


def mounted_configmap_file(docs, dep: dict, path: str) -> str:
    """The text of the file at `path` in dep's container, which must come from
    a key of a rendered ConfigMap mounted read-only."""
    for mount in only_container(dep).get("volumeMounts", []):
        directory = mount["mountPath"].rstrip("/")
        if not path.startswith(directory + "/"):
            continue
        assert mount.get("readOnly") is True, mount
        assert "subPath" not in mount, mount
        volume = volumes(dep)[mount["name"]]
        assert "configMap" in volume, f"{path} is not from a ConfigMap: {volume}"
        source = volume["configMap"]
        assert not source.get("optional"), source
        keys = {item["path"]: item["key"] for item in source["items"]}
        relative = path[len(directory) + 1 :]
        assert relative in keys, f"{path}: no ConfigMap key is projected as {relative!r}: {source}"
        data = by_name(docs, "ConfigMap", source["name"])["data"]
        assert keys[relative] in data, f"ConfigMap {source['name']} has no key {keys[relative]}"
        return data[keys[relative]]
    raise AssertionError(f"nothing is mounted at {path}")


def site_values(power: dict, site_id: str = "us-1") -> dict:
    """Chart values with one site that has `power`."""
    site = {"id": site_id, "region": "us", "rayAddress": "http://ray-head-svc.ray.svc:8265", "gpuModel": "H100", "power": power}
    return {"sites": [site]}


def write_values(tmp_path: Path, values: dict, name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def rendered(result: subprocess.CompletedProcess) -> list[dict]:
    """The documents of a successful `helm template` run."""
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def pod_spec(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]


def by_site_label(docs: list[dict], kind: str, comp: str = "agent") -> dict[str, dict]:
    """Objects of a kind for a component, keyed by their powerplane.io/site label."""
    out = {}
    for doc in component(docs, kind, comp):
        site = doc["metadata"]["labels"]["powerplane.io/site"]
        assert site not in out, f"two {kind}s for site {site}"
        out[site] = doc
    return out


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels / matchExpressions, or a plain
    Service selector) matches a set of labels."""
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if not match.items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
    return True


# --------------------------------------------------------------------------
# metric names in PromQL (dashboard panels, alert rules)

# PromQL words that are not metric names (functions are recognised by the
# "(" after them; these are the keywords and aggregation modifiers).
PROMQL_KEYWORDS = frozenset(
    "and or unless by without on ignoring group_left group_right bool offset inf nan atan2 start end".split()
    # aggregation operators, also when written without a "(" right after them
    + "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio".split()
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|' + r"'(?:[^'\\]|\\.)*'|`[^`]*`")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
# Grafana's label_values(metric{...}, label) reads metric; label_values(label) reads none.
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(\s*((?:[^,(){}]|\{[^{}]*\})+?)\s*,\s*[\w.]+\s*\)")
_LABEL_VALUES_NO_METRIC = re.compile(r"\blabel_values\s*\(\s*[\w.]+\s*\)")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not
    functions (followed by "("), keywords, label names (inside {...} or a
    by/without/on/ignoring/group_left/group_right list), strings, durations,
    numbers or Grafana variables ($site, ${datasource}, $__rate_interval).
    Grafana's label_values(metric, label) reads its metric."""
    expr = _LABEL_VALUES.sub(r" \1 ", expr)
    expr = _LABEL_VALUES_NO_METRIC.sub(" ", expr)
    expr = _STRING.sub(" ", expr)
    expr = _VARIABLE.sub(" ", expr)
    expr = _BRACES.sub(" ", expr)
    expr = _BRACKETS.sub(" ", expr)  # ranges, subqueries
    expr = _GROUPING.sub(" ", expr)
    names = set()
    for match in _IDENT.finditer(expr):
        name, call = match.group(1), match.group(2)
        if call or name in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def unknown_metrics(names: set[str], exported: set[str]) -> set[str]:
    """Names not exported; a histogram's _bucket/_sum/_count series counts as
    exported when the histogram's name is."""
    unknown = set()
    for name in names:
        if name in exported:
            continue
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base is not None and base in exported:
            continue
        unknown.add(name)
    return unknown
