"""The chart with several scheduler replicas (issue 12): PostgreSQL from a
Secret, leadership in scheduler.yaml, each pod advertising its own IP,
readiness that only the leader passes while liveness stays a plain TCP check,
the rollout strategy per store, the PodDisruptionBudget, pod anti-affinity,
and the render refusing more than one replica on SQLite.

values-ha.yaml is rendered alone ("ha") and layered over the multisite and
production files ("ha-production": TLS, so the native gRPC probe in TLS
mode); both pass `helm lint --strict` and kubernetes-validate (strict) for the
two newest Kubernetes versions, and their scheduler.yaml loads with the
scheduler's own load_config. Variants are in helm_support.HA_VARIANTS.
"""

from __future__ import annotations

import pytest
import yaml

from tests.integration.helm_support import (
    CHART,
    HA_VALUES,
    HA_VARIANTS,
    K8S_VERSIONS,
    NAMESPACE,
    POSTGRES_DSN_PATH,
    SCHEDULER,
    _value_args,
    agent_deployments,
    component,
    load_rendered_config,
    mounts,
    of_kind,
    only_container,
    pod_spec,
    render,
    rendered,
    run_helm,
    scheduler_config,
    scheduler_deployment,
    secret_data,
    selects,
    template,
    validation_errors,
    volume_at,
    write_values,
)

HA_REPLICAS = yaml.safe_load(HA_VALUES.read_text())["scheduler"]["replicas"]
PG = ("scheduler.store.postgres.enabled=true", "scheduler.store.postgres.existingSecret=pg")
GRPC_PROBE_TLS_SINCE = (1, 37)  # `mode: TLS` of the native gRPC probe

SQLITE_REFUSED = "scheduler.replicas is 2 but the store is SQLite: several scheduler replicas need a shared database"


def _version(k8s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in k8s.split("."))


def _pod_labels(dep: dict) -> dict:
    return dep["spec"]["template"]["metadata"]["labels"]


# --------------------------------------------------------------------------
# lint and validation


@pytest.mark.parametrize("variant", sorted(HA_VARIANTS))
def test_lint_strict(variant):
    spec = HA_VARIANTS[variant]
    result = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *_value_args(spec["values"], spec["sets"]))
    assert result.returncode == 0, f"helm lint --strict failed:\n{result.stdout}\n{result.stderr}"
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("k8s", K8S_VERSIONS)
@pytest.mark.parametrize("variant", sorted(HA_VARIANTS))
def test_kubernetes_validate_strict(variant, k8s):
    errors, checked = validation_errors(render(variant), k8s)
    if variant == "ha-production" and _version(k8s) < GRPC_PROBE_TLS_SINCE:
        # TLS with leadership needs the gRPC probe's `mode: TLS`; older
        # versions must refuse exactly that field, in both probes, nothing else
        assert errors and all(e.startswith(f"Deployment/{SCHEDULER}: ") and "Probe.grpc" in e and "'mode' was unexpected" in e for e in errors), errors
        return
    assert not errors, f"invalid objects for Kubernetes {k8s} (strict):\n" + "\n".join(errors)
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= checked


# --------------------------------------------------------------------------
# scheduler.yaml: store, leadership, advertise


@pytest.mark.parametrize("variant", sorted(HA_VARIANTS))
def test_config_loads_with_postgres_and_leadership(variant, tmp_path, monkeypatch):
    """The rendered scheduler.yaml, with the DSN file and $POWERPLANE_ADVERTISE
    as the pod has them, through the real load_config."""
    docs = render(variant)
    dep = scheduler_deployment(docs)
    cfg = scheduler_config(docs)
    assert cfg["store"] == {"postgres": {"dsn_file": POSTGRES_DSN_PATH, "pool_size": 4}}
    assert cfg["leadership"] == {"advertise": f"{SCHEDULER}:50051", "lease_ttl_s": 8, "renew_every_s": 1, "step_down_margin_s": 2}
    assert cfg["checkpoint_root"] == "s3://powerplane-checkpoints"

    # the DSN file is the existing Secret's key, mounted read-only
    directory, _, name = POSTGRES_DSN_PATH.rpartition("/")
    assert mounts(dep)[directory]["readOnly"] is True
    secret = volume_at(dep, directory)["secret"]
    assert secret["secretName"] == "powerplane-postgres"
    assert secret["items"] == [{"key": "dsn", "path": name}]
    assert of_kind(docs, "PersistentVolumeClaim") == []
    assert volume_at(dep, "/var/lib/powerplane") == {"name": "data", "emptyDir": {}}

    # each pod advertises its own IP: the kubelet expands $(POD_IP)
    env = only_container(dep)["env"]
    names = [e["name"] for e in env]
    pod_ip = env[names.index("POD_IP")]
    assert pod_ip == {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    advertise = env[names.index("POWERPLANE_ADVERTISE")]
    assert names.index("POD_IP") < names.index("POWERPLANE_ADVERTISE"), "$(POD_IP) expands only from earlier variables"
    grpc_port = {p["name"]: p["containerPort"] for p in only_container(dep)["ports"]}["grpc"]
    assert advertise == {"name": "POWERPLANE_ADVERTISE", "value": f"$(POD_IP):{grpc_port}"}
    monkeypatch.setenv("POWERPLANE_ADVERTISE", advertise["value"].replace("$(POD_IP)", "10.42.7.19"))

    loaded = load_rendered_config(docs, tmp_path)
    assert loaded.store.postgres is not None and loaded.store.postgres.pool_size == 4
    assert loaded.leadership.advertise == f"10.42.7.19:{grpc_port}"
    assert (loaded.leadership.lease_ttl_s, loaded.leadership.renew_every_s, loaded.leadership.step_down_margin_s) == (8, 1, 2)
    assert loaded.checkpoint_root == "s3://powerplane-checkpoints"


def test_inline_dsn_is_a_secret_and_rolls_the_pod(tmp_path):
    def render_with(dsn: str) -> list[dict]:
        pg = {"enabled": True, "dsn": dsn, "secretKey": "url", "poolSize": 8}
        path = write_values(tmp_path, {"scheduler": {"replicas": 2, "store": {"postgres": pg}}})
        return rendered(template(values=(path,)))

    docs = render_with("host=db dbname=powerplane user=powerplane password=s3cret")
    secret = [d for d in of_kind(docs, "Secret") if d["metadata"]["name"] == "powerplane-postgres"]
    assert len(secret) == 1 and secret_data(secret[0]) == {"url": "host=db dbname=powerplane user=powerplane password=s3cret"}
    dep = scheduler_deployment(docs)
    assert volume_at(dep, "/etc/powerplane/postgres")["secret"]["items"] == [{"key": "url", "path": "dsn"}]
    assert scheduler_config(docs)["store"]["postgres"]["pool_size"] == 8
    assert load_rendered_config(docs, tmp_path).store.postgres.pool_size == 8
    checksum = dep["spec"]["template"]["metadata"]["annotations"]["checksum/postgres"]
    again = scheduler_deployment(render_with("host=db2 dbname=powerplane user=powerplane password=s3cret"))
    assert again["spec"]["template"]["metadata"]["annotations"]["checksum/postgres"] != checksum


def test_no_kubernetes_api_access_is_needed():
    """The lease lives in the database: no Lease object, no RBAC, no API token."""
    docs = render("ha")
    assert {d["kind"] for d in docs}.isdisjoint({"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Lease"})
    assert pod_spec(scheduler_deployment(docs))["automountServiceAccountToken"] is False


# --------------------------------------------------------------------------
# refusals


def test_several_replicas_on_sqlite_are_refused():
    for sets in (("scheduler.replicas=2",), ("scheduler.replicas=2", "scheduler.leadership.enabled=true")):
        result = template(sets=sets)
        assert result.returncode != 0, f"render with {sets} must fail"
        assert SQLITE_REFUSED in result.stderr, result.stderr
        assert "set scheduler.store.postgres.enabled" in result.stderr
    assert template(sets=("scheduler.replicas=1",)).returncode == 0


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("scheduler.replicas=0",), "scheduler.replicas: Must be greater than or equal to 1"),
        (("scheduler.store.postgres.enabled=true",), "neither scheduler.store.postgres.existingSecret nor scheduler.store.postgres.dsn is set"),
        (
            (*PG, "scheduler.replicas=2", "scheduler.leadership.renewEveryS=4"),
            "scheduler.leadership.renewEveryS (4) must be at most half of leaseTtlS (8) less stepDownMarginS (2)",
        ),
        ((*PG, "scheduler.replicas=2", "scheduler.tls.enabled=true", "scheduler.tls.secretName=t"), "scheduler.probes.tlsProbe is tcp but leadership is on"),
        ((*PG, "scheduler.store.postgres.poolSize=65"), "scheduler.store.postgres.poolSize: Must be less than or equal to 64"),
    ],
)
def test_invalid_ha_values_fail(sets, message):
    result = template(sets=sets)
    assert result.returncode != 0, f"render with {sets} must fail"
    assert message in result.stderr, result.stderr


# --------------------------------------------------------------------------
# rollout, probes, disruption, placement

# name -> (--set values, replicas, whether leadership is on, strategy type)
STORE_CASES = {
    "sqlite": ((), 1, False, "Recreate"),
    "sqlite-leadership": (("scheduler.leadership.enabled=true",), 1, True, "Recreate"),
    "postgres-alone": (PG, 1, False, "Recreate"),
    "postgres-leadership": ((*PG, "scheduler.leadership.enabled=true"), 1, True, "RollingUpdate"),
    "postgres-2": ((*PG, "scheduler.replicas=2"), 2, True, "RollingUpdate"),
}


@pytest.mark.parametrize("case", sorted(STORE_CASES))
def test_strategy_and_probes_per_store(case):
    sets, replicas, leading, strategy = STORE_CASES[case]
    dep = scheduler_deployment(rendered(template(sets=sets)))
    assert dep["spec"]["replicas"] == replicas
    assert dep["spec"]["strategy"]["type"] == strategy
    if strategy == "Recreate":
        # one writer, or two without a fence: never two pods at once
        assert dep["spec"]["strategy"] == {"type": "Recreate"}
    else:
        # only the leader is ever Ready: keeping any old pod until a new one
        # is Ready would stall the rollout, so every old pod may go at once
        assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "100%"}
    c = only_container(dep)
    assert c["readinessProbe"]["grpc"] == {"port": 50051}  # gRPC health: NOT_SERVING on a standby
    if leading:
        assert c["livenessProbe"]["tcpSocket"] == {"port": "grpc"}  # a standby is alive
        assert "grpc" not in c["livenessProbe"]
        assert "POWERPLANE_ADVERTISE" in {e["name"] for e in c["env"]}
    else:
        assert c["livenessProbe"]["grpc"] == {"port": 50051}
        assert "POWERPLANE_ADVERTISE" not in {e["name"] for e in c["env"]}
        assert "leadership" not in scheduler_config(rendered(template(sets=sets)))


@pytest.mark.parametrize("variant", sorted(HA_VARIANTS))
def test_ha_probes_strategy_and_service(variant):
    docs = render(variant)
    dep = scheduler_deployment(docs)
    assert dep["spec"]["replicas"] == HA_REPLICAS >= 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "100%"}}
    c = only_container(dep)
    # readiness is the leadership-aware gRPC health check (in TLS mode with TLS)
    want = {"port": 50051, "mode": "TLS"} if variant == "ha-production" else {"port": 50051}
    assert c["readinessProbe"]["grpc"] == want
    assert "tcpSocket" not in c["readinessProbe"]
    assert c["livenessProbe"]["tcpSocket"] == {"port": "grpc"} and "grpc" not in c["livenessProbe"]
    # the Service (what agents dial) routes to Ready scheduler pods: the leader
    svc = component(docs, "Service", "scheduler")[0]
    assert selects(svc["spec"]["selector"], _pod_labels(dep))
    assert not svc["spec"].get("publishNotReadyAddresses")


@pytest.mark.parametrize("variant", sorted(HA_VARIANTS))
def test_ha_pod_disruption_budget(variant):
    docs = render(variant)
    pdbs = component(docs, "PodDisruptionBudget", "scheduler")
    assert len(pdbs) == 1
    spec = pdbs[0]["spec"]
    # only the leader is Ready: standbys may go while it serves, it waits for you
    assert spec == {"minAvailable": 1, "selector": spec["selector"]}
    assert selects(spec["selector"], _pod_labels(scheduler_deployment(docs)))
    for agent in agent_deployments(docs).values():
        assert not selects(spec["selector"], _pod_labels(agent))


def test_single_replica_budget_is_unchanged():
    for sets in ((), (*PG, "scheduler.leadership.enabled=true")):
        pdb = component(rendered(template(sets=sets)), "PodDisruptionBudget", "scheduler")[0]
        assert pdb["spec"]["maxUnavailable"] == 0 and "minAvailable" not in pdb["spec"]


@pytest.mark.parametrize("variant", sorted(HA_VARIANTS))
def test_replicas_prefer_different_nodes(variant):
    dep = scheduler_deployment(render(variant))
    affinity = pod_spec(dep)["affinity"]
    (preferred,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["weight"] == 100
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["labelSelector"], _pod_labels(dep))
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity["podAntiAffinity"]
    if variant == "ha-production":
        assert pod_spec(dep)["nodeSelector"] == {"node-role.powerplane.io/control": "true"}


def test_own_anti_affinity_is_kept_and_one_replica_gets_none(tmp_path):
    own = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "scheduler"}}}
            ]
        }
    }
    node = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["control"]}]}]
            }
        }
    }
    pg = {"enabled": True, "existingSecret": "pg"}
    path = write_values(tmp_path, {"scheduler": {"replicas": 2, "store": {"postgres": pg}, "affinity": own}})
    assert pod_spec(scheduler_deployment(rendered(template(values=(path,)))))["affinity"] == own
    path = write_values(tmp_path, {"scheduler": {"replicas": 2, "store": {"postgres": pg}, "affinity": node}})
    merged = pod_spec(scheduler_deployment(rendered(template(values=(path,)))))["affinity"]
    assert merged["nodeAffinity"] == node["nodeAffinity"] and "podAntiAffinity" in merged
    assert "affinity" not in pod_spec(scheduler_deployment(rendered(template(sets=PG))))


def test_lease_timing_limit_matches_load_config(tmp_path):
    """The render's limit on renewEveryS is the scheduler's: at the limit both accept."""
    docs = rendered(template(sets=(*PG, "scheduler.replicas=2", "scheduler.leadership.renewEveryS=3")))
    assert load_rendered_config(docs, tmp_path).leadership.renew_every_s == 3
