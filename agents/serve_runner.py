"""Serve inference runs on the site's Ray cluster: the one agent module that imports ray.serve.

A run of a Serve job is a Serve application named by its run id, answering HTTP at
`/<job id>` on Serve's proxy (one proxy, on the head node, bound to the host given,
127.0.0.1 by default). Its ingress deployment runs `replicas` replicas, each with the
spec's GPUs and CPUs and a sliver of the site's custom resource, so replicas land on
this site's nodes only. The application is deployed with Serve's external scaler
enabled: scaling is an in-place change of the ingress deployment's target replica
count through the Serve controller (the same call as Serve's REST scale API), never
a redeploy, so running replicas keep serving.

Demand: Serve's own proxy counter `serve_num_http_requests` (per application, every
request answered, any status), read from each alive node's Prometheus endpoint; the
rate is the counter's increase over a sliding window (`demand_window_s`, which must
span a few of Ray's metrics report intervals). It counts answered requests, so a
service's `target_rps_per_replica` should sit below what one replica can answer.

Replicas reported: the larger of the deployment's target and the replicas Serve has
alive (starting, running or stopping): what the run holds now. A scale-down is thus
confirmed only once the target is lowered *and* the surplus replicas are gone.

After an agent restart the runs are found again by listing Serve's applications:
those whose name is a Powerplane run id and whose ingress asks for this site's
resource (every run-id application when no site resource is set).
Every method blocks (Ray calls, HTTP); the session calls them in threads.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agents.run_records import RunRecord, RunStart, replicas_of
from scheduler.core.runs import RunReport, RunState, ServeLoad

log = logging.getLogger(__name__)
SITE_SLIVER = 0.001  # of the site's custom resource, per replica: pins replicas to the site's nodes
MAX_MESSAGE = 2000
CACHE_S = 0.3  # one Serve details fetch and one metrics scrape serve every run's status in a poll round
_COUNTER = re.compile(r"^ray_serve_num_http_requests(?:_total)?\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.eE+-]+)")
_APP_LABEL = re.compile(r'application="(?P<app>[^"]*)"')
STATE_OF = {
    "NOT_STARTED": RunState.STARTING,
    "DEPLOYING": RunState.STARTING,
    "RUNNING": RunState.RUNNING,
    "UNHEALTHY": RunState.RUNNING,  # still answering what it can; Serve restarts replicas
    "DEPLOY_FAILED": RunState.FAILED,
    "DELETING": RunState.STOPPED,
}


def _is_run_id(name: str) -> bool:
    job_id, sep, attempt = name.rpartition("-r")
    return bool(sep and job_id and attempt.isdigit())


def load_application(import_path: str, args: dict | None = None):
    """The Serve application at "module:attribute" (an Application, or a builder called with `args`)."""
    from ray.serve import Application

    module_name, sep, attribute = import_path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"serve.import_path must be 'module:attribute', got {import_path!r}")
    target = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(target, Application) and callable(target):
        target = target(args or {})
    if not isinstance(target, Application):
        raise ValueError(f"{import_path} is not a Serve application (an Application or a builder returning one)")
    return target


@dataclass
class DemandMeter:
    """Requests per second per application from a monotonically growing counter."""

    window_s: float = 10.0
    samples: dict[str, deque] = field(default_factory=dict)

    def add(self, app: str, at: float, count: float) -> float:
        series = self.samples.setdefault(app, deque())
        if series and count < series[-1][1]:
            series.clear()  # the counter restarted (a proxy restarted)
        series.append((at, count))
        while len(series) > 2 and at - series[1][0] >= self.window_s:
            series.popleft()
        first_at, first = series[0]
        return (count - first) / (at - first_at) if at - first_at > 0 else 0.0

    def forget(self, app: str) -> None:
        self.samples.pop(app, None)


class ServeRunner:
    def __init__(
        self,
        gcs_address: str,
        site_id: str,
        site_resource: str = "",
        http_host: str = "127.0.0.1",
        http_port: int = 8000,
        demand_window_s: float = 10.0,
        details_over_http: Callable[[], dict] | None = None,
    ):
        self.gcs_address, self.site_id, self.site_resource = gcs_address, site_id, site_resource
        # Serve's details from the dashboard's REST API: no driver connection needed, so an
        # agent that restarts lists its Serve runs (and registers) before ray.init is done.
        self.details_over_http = details_over_http
        self.http_host, self.http_port = http_host, http_port
        self.demand = DemandMeter(demand_window_s)
        self._lock = threading.Lock()
        self._details: tuple[float, dict] = (0.0, {})
        self._counts: tuple[float, dict[str, float]] = (0.0, {})
        self._rates: dict[str, float] = {}
        self._deleted: set[str] = set()
        self._deploying: set[str] = set()  # runs whose deployment is under way (not listed by Serve yet)
        self._started = False

    # ------------------------------------------------------------- Ray and Serve
    def connect(self) -> None:
        from agents.miners.ray_groups import ensure_ray

        ensure_ray(self.gcs_address)

    @property
    def connected(self) -> bool:
        import ray

        return ray.is_initialized()

    def _serve(self):
        from ray import serve

        self.connect()
        if not self._started:
            # Cluster-wide options: the first agent to start Serve sets them (one proxy, on the head node).
            serve.start(proxy_location="HeadOnly", http_options={"host": self.http_host, "port": self.http_port})
            self._started = True
        return serve

    def _client(self):
        from ray.serve.context import _get_global_client

        self.connect()
        return _get_global_client(raise_if_no_controller_running=False)

    def details(self, fresh: bool = False) -> dict:
        """Serve's details of every application (cached for a poll round)."""
        with self._lock:
            at, details = self._details
            if not fresh and time.monotonic() - at < CACHE_S:
                return details
            if self.details_over_http is not None and not self.connected:
                details = self.details_over_http()
            else:
                client = self._client()
                details = client.get_serve_details() if client is not None else {}
            self._details = (time.monotonic(), details)
            return details

    def _endpoint(self, details: dict, app: dict) -> str:
        http = details.get("http_options") or {}
        host = http.get("host") or self.http_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{host}:{http.get('port') or self.http_port}{app.get('route_prefix') or '/'}"

    # ------------------------------------------------------------- runs
    def submit(self, start: RunStart) -> None:
        """Deploy the run's application (idempotent: a run already deployed is left alone)."""
        self._deploying.add(start.run_id)
        try:
            self._submit(start)
        finally:
            with self._lock:
                self._details = (0.0, {})  # the next status reads Serve afresh, with the new application
            self._deploying.discard(start.run_id)

    def _submit(self, start: RunStart) -> None:
        serve = self._serve()
        applications = self.details(fresh=True).get("applications", {})
        if start.run_id in applications:
            log.info("run %s already on Serve; not deployed again", start.run_id)
            return
        route = f"/{start.job_id}"
        for name, app in applications.items():
            if name != start.run_id and app.get("route_prefix") == route:  # an older run of the job: never two live runs
                log.info("deleting %s, an older run of job %s, before deploying %s", name, start.job_id, start.run_id)
                serve.delete(name, _blocking=True)
        from ray.serve import Application
        from ray.serve.api import RunTarget

        spec = start.spec
        app = load_application(spec.serve_import_path)
        ingress = app._bound_deployment
        env = dict(spec.env)
        env.update(POWERPLANE_JOB_ID=start.job_id, POWERPLANE_RUN_ID=start.run_id, POWERPLANE_SITE=self.site_id)
        options = dict(ingress.ray_actor_options or {})
        options.update(num_gpus=spec.resources.gpus, num_cpus=spec.resources.cpus, runtime_env={"env_vars": env})
        if spec.resources.memory_bytes:
            options["memory"] = spec.resources.memory_bytes
        if self.site_resource:
            options["resources"] = {**options.get("resources", {}), self.site_resource: SITE_SLIVER}
        replicas = start.start_replicas
        app = Application(ingress.options(num_replicas=replicas, ray_actor_options=options))
        target = RunTarget(target=app, name=start.run_id, route_prefix=route, external_scaler_enabled=True)
        serve.run_many([target], wait_for_applications_running=False)
        self._deleted.discard(start.run_id)
        log.info("run %s deployed on Serve with %d replicas at /%s", start.run_id, replicas, start.job_id)

    def scale(self, run_id: str, replicas: int) -> bool:
        """Set the ingress deployment's replicas in place; False when Serve has no such run."""
        import ray
        from ray.serve._private.common import DeploymentID

        app = self.details(fresh=True).get("applications", {}).get(run_id)
        if app is None:
            return False
        ingress = _ingress_of(app)
        client = self._client()
        ray.get(client._controller.update_deployment_replicas.remote(DeploymentID(name=ingress, app_name=run_id), int(replicas)), timeout=30)
        with self._lock:
            self._details = (0.0, {})
        return True

    def stop(self, run_id: str) -> bool:
        """Delete the run's application; False when Serve has no such run."""
        if run_id not in self.details(fresh=True).get("applications", {}):
            return False
        self._serve().delete(run_id, _blocking=False)
        self._deleted.add(run_id)
        self.demand.forget(run_id)
        return True

    def has(self, run_id: str) -> bool:
        return run_id in self.details().get("applications", {})

    def status(self, run_id: str) -> RunReport:
        details = self.details()
        app = details.get("applications", {}).get(run_id)
        if app is None:
            if run_id in self._deploying:
                return RunReport(run_id, RunState.STARTING, "deploying on Serve")
            if run_id in self._deleted:
                return RunReport(run_id, RunState.STOPPED, "Serve application deleted")
            return RunReport(run_id, RunState.UNKNOWN, "Serve has no such application")
        return self._status_of(details, run_id, app)

    def _status_of(self, details: dict, run_id: str, app: dict) -> RunReport:
        status = app.get("status", "")
        state = STATE_OF.get(str(getattr(status, "value", status)), RunState.STARTING)  # an enum or its value
        deployment = app.get("deployments", {}).get(_ingress_of(app), {})
        replicas = max(int(deployment.get("target_num_replicas", 0)), len(deployment.get("replicas", [])))
        message = app.get("message") or deployment.get("message") or ""
        requests_per_s = self.requests_per_s(run_id) if state == RunState.RUNNING else 0.0
        return RunReport(run_id, state, message[:MAX_MESSAGE], serve=ServeLoad(requests_per_s, replicas, self._endpoint(details, app)))

    def list_runs(self) -> list[RunRecord]:
        """Every Serve run of this site, with the GPUs its replicas hold."""
        details = self.details(fresh=True)
        records = []
        for name, app in details.get("applications", {}).items():
            if not _is_run_id(name):
                continue
            deployment = app.get("deployments", {}).get(_ingress_of(app), {})
            needs = deployment.get("required_resources") or {}
            if self.site_resource and self.site_resource not in needs:
                continue
            status = self._status_of(details, name, app)
            records.append(RunRecord(status, int(float(needs.get("GPU", 0))) * replicas_of(status)))
        return records

    # ------------------------------------------------------------- demand
    def requests_per_s(self, run_id: str) -> float:
        """Requests per second the run answered over the last `demand_window_s`."""
        with self._lock:
            at, counts = self._counts
            if time.monotonic() - at >= CACHE_S:
                counts = self._scrape()
                now = time.monotonic()
                self._counts = (now, counts)
                self._rates = {app: self.demand.add(app, now, count) for app, count in counts.items()}
            return max(0.0, self._rates.get(run_id, 0.0))

    def _scrape(self) -> dict[str, float]:
        """Serve's request counter per application, summed over every alive node's metrics."""
        import ray

        counts: dict[str, float] = {}
        for node in ray.nodes():
            port = node.get("MetricsExportPort")
            if not node.get("Alive") or not port:
                continue
            try:
                text = urllib.request.urlopen(f"http://{node['NodeManagerAddress']}:{port}/metrics", timeout=2).read().decode()
            except OSError as err:
                log.debug("metrics of node %s unavailable: %s", node.get("NodeID"), err)
                continue
            for app, value in parse_request_counts(text).items():
                counts[app] = counts.get(app, 0.0) + value
        return counts


def parse_request_counts(text: str) -> dict[str, float]:
    """Sum of `serve_num_http_requests` per application in a Prometheus text page."""
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = _COUNTER.match(line)
        if not match:
            continue
        app = _APP_LABEL.search(match["labels"])
        if app:
            counts[app["app"]] = counts.get(app["app"], 0.0) + float(match["value"])
    return counts


def _ingress_of(app: dict) -> str:
    topology = app.get("deployment_topology") or {}
    ingress = topology.get("ingress_deployment")
    if ingress:
        return ingress
    deployments = list(app.get("deployments", {}))
    return deployments[-1] if deployments else ""
