"""Checks of the Helm chart in helm/powerplane with a real `helm` binary.

Lints the chart, renders it with the default values and with
helm/values-multisite.yaml, checks the rendered objects, and validates every
one of them against the Kubernetes OpenAPI schemas shipped by
`kubernetes-validate` in strict mode (unknown fields are errors). The files
the chart renders for the programs (scheduler.yaml, each agent's
--site-config file, the command lines) are read with the programs' own
loaders and parsers.

helm is looked up as: $POWERPLANE_HELM, else <repo>/.tools/node_modules/.bin/helm
(what scripts/install_helm.sh installs), else `helm` on PATH. No network is
used: `helm lint` and `helm template` work offline on a local chart.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
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
# Site id -> its `power:` block, as written in values-multisite.yaml.
MULTISITE_POWER = {site["id"]: site["power"] for site in yaml.safe_load(MULTISITE_VALUES.read_text())["sites"] if site.get("power")}

# Where the chart mounts a powered site's --site-config file.
SITE_CONFIG_PATH = "/etc/powerplane/site-config/site.yaml"

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
)

VARIANTS = {
    "default": {"values": (), "sets": ()},
    "multisite": {"values": (MULTISITE_VALUES,), "sets": ()},
    "tls-inline": {"values": (), "sets": TLS_INLINE_SETS},
}

# Per variant: site id -> the site config its agent must be given (sites not
# listed get none).
EXPECTED_SITE_POWER = {
    "default": {},
    "multisite": MULTISITE_POWER,
    "tls-inline": {
        "EU_West.2": {
            "interconnect_cap_mw": 5,
            "cooling": "hydro",
            "market_node": "DE-LU",
            "fleets": [{"fleet_id": "xp-old", "model": "S19XP", "count": 200, "ramp_down_s": 3, "ramp_up_s": 3, "standby_w": 30}],
        }
    },
}


def _scheduler_power(hashprice, interval, lead, margin, hysteresis, min_on, min_off) -> dict:
    return {
        "hashprice_usd_per_ph_day": hashprice,
        "power_interval_s": interval,
        "cap_lead_s": lead,
        "mining": {"margin_usd_per_mwh": margin, "hysteresis_usd_per_mwh": hysteresis, "min_on_s": min_on, "min_off_s": min_off},
    }


# Per variant: the power settings scheduler.yaml must hold.
EXPECTED_SCHEDULER_POWER = {
    "default": _scheduler_power(45, 1.0, 10, 0, 2, 300, 300),
    "multisite": _scheduler_power(48.5, 1.0, 30, 5, 2, 600, 600),
    "tls-inline": _scheduler_power(45, 1.0, 20, -5, 2, 300, 300),
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


def load_rendered_config(docs, tmp_path: Path):
    """The rendered scheduler.yaml (and tokens.yaml), through the real load_config.

    Paths inside the pod (tokens, TLS) are pointed at files in tmp_path."""
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
        "hashprice_usd_per_ph_day": 45,
        "mining": {"margin_usd_per_mwh": 0, "hysteresis_usd_per_mwh": 2, "min_on_s": 300, "min_off_s": 300},
        "power_interval_s": 1.0,
        "cap_lead_s": 10,
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
    # scheduler.yaml, plus one site config per site with a power profile
    assert set(MULTISITE_POWER) == {"us-tx-1", "eu-no-1"}
    assert len(of_kind(docs, "ConfigMap")) == 1 + len(MULTISITE_POWER)


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
    loaded = load_rendered_config(render(variant), tmp_path)
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


# --------------------------------------------------------------------------
# power: scheduler settings and each site's --site-config file


def _power_settings(config) -> dict:
    return {
        "hashprice_usd_per_ph_day": config.hashprice_usd_per_ph_day,
        "power_interval_s": config.power_interval_s,
        "cap_lead_s": config.cap_lead_s,
        "mining": config.mining.model_dump(),
    }


def test_chart_power_defaults_are_the_schedulers():
    """values.yaml's scheduler.power defaults are SchedulerConfig's own defaults."""
    from scheduler.server.config import SchedulerConfig

    assert _power_settings(SchedulerConfig()) == EXPECTED_SCHEDULER_POWER["default"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scheduler_power_settings_load_in_the_real_scheduler(variant, tmp_path):
    loaded = load_rendered_config(render(variant), tmp_path)
    assert _power_settings(loaded) == EXPECTED_SCHEDULER_POWER[variant]


def test_fractional_and_zero_power_settings_render_exactly(tmp_path):
    power = {
        "hashpriceUsdPerPhDay": 47.3,
        "intervalSeconds": 0.5,
        "capLeadSeconds": 12.5,
        "mining": {"marginUsdPerMwh": -2.5, "hysteresisUsdPerMwh": 0.25, "minOnSeconds": 0, "minOffSeconds": 90},
    }
    result = template(values=(write_values(tmp_path, {"scheduler": {"power": power}}),))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (tmp_path / "load").mkdir()
    loaded = load_rendered_config(docs, tmp_path / "load")
    assert _power_settings(loaded) == _scheduler_power(47.3, 0.5, 12.5, -2.5, 0.25, 0, 90)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_agent_site_configs(variant, tmp_path):
    """A site with `power:` gets --site-config pointing at its own mounted
    ConfigMap key, whose text the agent's real loader reads back as the values
    given; a site without it gets nothing new."""
    from agents.site_config import load_site_config, parse_site_config
    from scheduler.cli.main import _parser

    docs = render(variant)
    expected = EXPECTED_SITE_POWER[variant]
    agents = agent_deployments(docs)
    assert set(expected) <= set(agents)
    assert len(component(docs, "ConfigMap", "agent")) == len(expected)
    for site, dep in agents.items():
        c = only_container(dep)
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        if site not in expected:
            assert "--site-config" not in c["args"]
            assert "checksum/site-config" not in annotations
            assert not [v for v in volumes(dep).values() if "configMap" in v]
            continue
        path = arg_value(c["args"], "--site-config")
        assert path == SITE_CONFIG_PATH
        assert _parser().parse_args(c["args"]).site_config == Path(path)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        text = mounted_configmap_file(docs, dep, path)
        # The ConfigMap is this site's own (named like its Deployment).
        assert volume_at(dep, os.path.dirname(path))["configMap"]["name"] == dep["metadata"]["name"]
        assert yaml.safe_load(text) == expected[site]
        # The pod rolls when the file changes: the checksum is of the file's text.
        assert annotations["checksum/site-config"] == hashlib.sha256(text.rstrip("\n").encode()).hexdigest()

        file = tmp_path / f"{site}.yaml"
        file.write_text(text)
        loaded = load_site_config(file)
        assert loaded == parse_site_config(expected[site])
        want = expected[site]
        assert loaded.interconnect_cap_w == want["interconnect_cap_mw"] * 1e6
        assert loaded.cooling.value == want["cooling"]
        assert loaded.market_node == want["market_node"]
        assert [(f.fleet_id, f.model, f.count) for f in loaded.fleets] == [(f["fleet_id"], f["model"], f["count"]) for f in want["fleets"]]
        for fleet, given in zip(loaded.fleets, want["fleets"]):
            for field in ("ramp_down_s", "ramp_up_s", "standby_w"):
                assert getattr(fleet, field) == given.get(field)


def test_multisite_power_profiles():
    """The example file's sites: Texas on air with two fleets, Norway on hydro, Ohio unmanaged."""
    from agents.site_config import parse_site_config

    tx = parse_site_config(MULTISITE_POWER["us-tx-1"])
    assert tx.interconnect_cap_mw == 100 and tx.effective_overhead == pytest.approx(1.10)
    assert {f.model for f in tx.fleets} == {"S21", "S19XP"}
    no = parse_site_config(MULTISITE_POWER["eu-no-1"])
    assert no.effective_overhead == pytest.approx(1.04)
    for config in (tx, no):  # the fleets at full power fit under the cap
        mining_w = sum(fleet.model.rated_w * fleet.count for fleet in config.fleet_models())
        assert mining_w * config.effective_overhead < config.interconnect_cap_w
    assert "us-oh-1" not in MULTISITE_POWER


def test_site_config_checksum_rolls_only_that_agent():
    before = agent_deployments(render("multisite"))
    result = template(values=(MULTISITE_VALUES,), sets=("sites[0].power.interconnect_cap_mw=90",))
    assert result.returncode == 0, result.stderr
    after = agent_deployments([d for d in yaml.safe_load_all(result.stdout) if d])

    def annotations(deps, site):
        return deps[site]["spec"]["template"]["metadata"]["annotations"]

    assert annotations(after, "us-tx-1")["checksum/site-config"] != annotations(before, "us-tx-1")["checksum/site-config"]
    assert annotations(after, "us-tx-1")["checksum/token"] == annotations(before, "us-tx-1")["checksum/token"]
    for site in ("us-oh-1", "eu-no-1"):
        assert annotations(after, site) == annotations(before, site)


def test_schema_power_block_matches_the_agent():
    """The schema's power block has the agent's fields, miner models and cooling kinds."""
    from agents.site_config import _FLEET_ID, FleetConfig, SiteConfig
    from scheduler.core.power import MINER_MODELS, Cooling

    schema = json.loads((CHART / "values.schema.json").read_text())
    power = schema["properties"]["sites"]["items"]["properties"]["power"]
    fleet = power["properties"]["fleets"]["items"]
    assert set(power["properties"]) == set(SiteConfig.model_fields)
    assert set(fleet["properties"]) == set(FleetConfig.model_fields)
    assert power["additionalProperties"] is False and fleet["additionalProperties"] is False
    assert set(fleet["required"]) == {name for name, field in FleetConfig.model_fields.items() if field.is_required()}
    assert sorted(fleet["properties"]["model"]["enum"]) == sorted(MINER_MODELS)
    assert sorted(power["properties"]["cooling"]["enum"]) == sorted(c.value for c in Cooling)
    assert fleet["properties"]["fleet_id"]["pattern"] == _FLEET_ID


def _fleet(**fields) -> dict:
    return {"fleet_id": "f1", "model": "S21", "count": 10, **fields}


GOOD_POWER_BLOCKS = {
    "gpu-only": {"gpu_load_w": 1200.5, "gpu_idle_w": 999},
    "no-fleets-no-cap": {"market_node": "HB_NORTH", "fleets": []},
    "overhead-bounds": {"interconnect_cap_mw": 5.5, "overhead": 1, "fleets": [_fleet(count=1)]},
    "overhead-max": {"interconnect_cap_mw": 0.5, "overhead": 3, "cooling": "hydro"},
    "overrides": {"interconnect_cap_mw": 5, "fleets": [_fleet(ramp_down_s=0.5, ramp_up_s=30, standby_w=0)]},
    **{
        f"standby-just-below-{model}": {"interconnect_cap_mw": 5, "fleets": [_fleet(model=model, standby_w=rated - 0.5)]}
        for model, rated in (("S19XP", 3010), ("S21", 3500), ("A2", 3730))
    },
}


@pytest.mark.parametrize("name", sorted(GOOD_POWER_BLOCKS))
def test_good_power_blocks_render_and_load(name, tmp_path):
    from agents.site_config import load_site_config, parse_site_config

    power = GOOD_POWER_BLOCKS[name]
    parse_site_config(power)  # the agent takes it ...
    result = template(values=(write_values(tmp_path, site_values(power)),))
    assert result.returncode == 0, f"{name}: {result.stderr}"  # ... and so does the chart
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    dep = agent_deployments(docs)["us-1"]
    text = mounted_configmap_file(docs, dep, arg_value(only_container(dep)["args"], "--site-config"))
    (tmp_path / "site.yaml").write_text(text)
    assert load_site_config(tmp_path / "site.yaml") == parse_site_config(power)


def test_standby_limits_are_the_models_rated_power():
    """The chart's rated-power table (standby_w check) is MINER_MODELS': for
    every model, the good blocks put standby_w just below rated power and the
    bad ones at it."""
    from scheduler.core.power import MINER_MODELS

    tested = {name.removeprefix("standby-just-below-") for name in GOOD_POWER_BLOCKS if name.startswith("standby-just-below-")}
    assert tested == set(MINER_MODELS)
    at_rated = {name: power for name, power, _ in BAD_POWER_BLOCKS if name.startswith("standby-at-rated-")}
    assert {name.removeprefix("standby-at-rated-") for name in at_rated} == set(MINER_MODELS)
    for model, spec in MINER_MODELS.items():
        assert GOOD_POWER_BLOCKS[f"standby-just-below-{model}"]["fleets"][0]["standby_w"] == spec.rated_w - 0.5
        assert at_rated[f"standby-at-rated-{model}"]["fleets"][0]["standby_w"] == spec.rated_w


BAD_POWER_BLOCKS = [
    # (name, power block, what the error must say)
    ("unknown-model", {"interconnect_cap_mw": 5, "fleets": [_fleet(model="S19")]}, "sites.0.power.fleets.0.model must be one of the following"),
    ("negative-count", {"interconnect_cap_mw": 5, "fleets": [_fleet(count=-3)]}, "sites.0.power.fleets.0.count: Must be greater than or equal to 1"),
    ("zero-count", {"interconnect_cap_mw": 5, "fleets": [_fleet(count=0)]}, "sites.0.power.fleets.0.count: Must be greater than or equal to 1"),
    ("fractional-count", {"interconnect_cap_mw": 5, "fleets": [_fleet(count=2.5)]}, "sites.0.power.fleets.0.count: Invalid type. Expected: integer"),
    ("missing-fleet-id", {"interconnect_cap_mw": 5, "fleets": [{"model": "S21", "count": 1}]}, "sites.0.power.fleets.0: fleet_id is required"),
    ("missing-model", {"interconnect_cap_mw": 5, "fleets": [{"fleet_id": "a", "count": 1}]}, "sites.0.power.fleets.0: model is required"),
    ("missing-count", {"interconnect_cap_mw": 5, "fleets": [{"fleet_id": "a", "model": "A2"}]}, "sites.0.power.fleets.0: count is required"),
    ("bad-fleet-id", {"interconnect_cap_mw": 5, "fleets": [_fleet(fleet_id="-x")]}, "sites.0.power.fleets.0.fleet_id: Does not match pattern"),
    ("unknown-fleet-field", {"interconnect_cap_mw": 5, "fleets": [_fleet(hashrate=1)]}, "Additional property hashrate is not allowed"),
    ("zero-ramp", {"interconnect_cap_mw": 5, "fleets": [_fleet(ramp_down_s=0)]}, "sites.0.power.fleets.0.ramp_down_s: Must be greater than 0"),
    ("negative-standby", {"interconnect_cap_mw": 5, "fleets": [_fleet(standby_w=-1)]}, "sites.0.power.fleets.0.standby_w: Must be greater than or equal to 0"),
    *(
        (
            f"standby-at-rated-{model}",
            {"interconnect_cap_mw": 5, "fleets": [_fleet(model=model, standby_w=rated)]},
            "sites.0.power.fleets.0.standby_w: must be below",
        )
        for model, rated in (("S19XP", 3010), ("S21", 3500), ("A2", 3730))
    ),
    ("unknown-cooling", {"cooling": "water"}, "sites.0.power.cooling must be one of the following"),
    ("zero-cap", {"interconnect_cap_mw": 0}, "sites.0.power.interconnect_cap_mw: Must be greater than 0"),
    ("overhead-too-high", {"overhead": 3.5}, "sites.0.power.overhead: Must be less than or equal to 3"),
    ("overhead-below-one", {"overhead": 0.9}, "sites.0.power.overhead: Must be greater than or equal to 1"),
    ("zero-load", {"gpu_load_w": 0}, "sites.0.power.gpu_load_w: Must be greater than 0"),
    ("idle-at-default-load", {"gpu_idle_w": 1000}, "sites.0.power.gpu_idle_w: must be below gpu_load_w"),
    ("idle-above-load", {"gpu_load_w": 500, "gpu_idle_w": 600}, "sites.0.power.gpu_idle_w: must be below gpu_load_w"),
    ("numeric-market-node", {"market_node": 4}, "sites.0.power.market_node: Invalid type. Expected: string"),
    ("unknown-field", {"interconnect_cap": 5}, "Additional property interconnect_cap is not allowed"),
    ("fleets-without-cap", {"fleets": [_fleet()]}, "sites.0.power.interconnect_cap_mw: is required when the site has fleets"),
    (
        "duplicate-fleet-ids",
        {"interconnect_cap_mw": 5, "fleets": [_fleet(), _fleet(model="A2")]},
        'sites.0.power.fleets.1.fleet_id: fleet id "f1" is listed twice',
    ),
    ("fleets-not-a-list", {"interconnect_cap_mw": 5, "fleets": {"fleet_id": "a"}}, "sites.0.power.fleets: Invalid type. Expected: array"),
]


@pytest.mark.parametrize(("name", "power", "message"), BAD_POWER_BLOCKS, ids=[b[0] for b in BAD_POWER_BLOCKS])
def test_bad_power_block_is_refused(name, power, message, tmp_path):
    """What the agent would refuse at start-up, the chart refuses at install,
    naming the field."""
    from agents.site_config import SiteConfigError, parse_site_config

    with pytest.raises(SiteConfigError):
        parse_site_config(power)
    values = write_values(tmp_path, site_values(power))
    result = template(values=(values,))
    assert result.returncode != 0, f"{name}: helm template must refuse {power}"
    assert message in result.stderr, result.stderr
    assert result.stdout.strip() == ""
    lint = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--values", str(values))
    assert lint.returncode != 0, f"{name}: helm lint must refuse {power}"
    assert message in lint.stdout + lint.stderr, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("power", "config", "message"),
    [
        ({"hashpriceUsdPerPhDay": -1}, {"hashprice_usd_per_ph_day": -1}, "scheduler.power.hashpriceUsdPerPhDay: Must be greater than or equal to 0"),
        ({"intervalSeconds": 0}, {"power_interval_s": 0}, "scheduler.power.intervalSeconds: Must be greater than 0"),
        ({"capLeadSeconds": -5}, {"cap_lead_s": -5}, "scheduler.power.capLeadSeconds: Must be greater than or equal to 0"),
        (
            {"mining": {"hysteresisUsdPerMwh": -1}},
            {"mining": {"hysteresis_usd_per_mwh": -1}},
            "scheduler.power.mining.hysteresisUsdPerMwh: Must be greater than or equal to 0",
        ),
        ({"mining": {"minOnSeconds": -1}}, {"mining": {"min_on_s": -1}}, "scheduler.power.mining.minOnSeconds: Must be greater than or equal to 0"),
        ({"mining": {"minOffSeconds": -1}}, {"mining": {"min_off_s": -1}}, "scheduler.power.mining.minOffSeconds: Must be greater than or equal to 0"),
        ({"mining": {"min_off_s": 5}}, None, "Additional property min_off_s is not allowed"),
        ({"hashprice": 40}, None, "Additional property hashprice is not allowed"),
    ],
)
def test_bad_scheduler_power_settings_are_refused(power, config, message, tmp_path):
    """The schema's limits on scheduler.power are the scheduler's own."""
    from pydantic import ValidationError

    from scheduler.server.config import SchedulerConfig

    if config is not None:
        with pytest.raises(ValidationError):
            SchedulerConfig.model_validate(config)
    result = template(values=(write_values(tmp_path, {"scheduler": {"power": power}}),))
    assert result.returncode != 0, f"helm template must refuse scheduler.power {power}"
    assert message in result.stderr, result.stderr
