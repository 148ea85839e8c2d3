"""A whole Powerplane on one machine, for the demo, the integration tests and the
benchmarks: a local Ray cluster with one Ray node per site (virtual GPUs advertised
to Ray, each node tagged with the custom resource `powerplane_site_<id>`), the
scheduler and site agents as real subprocesses speaking gRPC over loopback.
Dev-only: the production packages never import it.

A site may carry a power profile (`SitePowerSpec`: cap, cooling, GPU power, emulated
miner fleets with optional fast ramps for tests); its agent then gets it as a YAML
site config (`--site-config`, see agents/site_config.py). Without one a site has no
fleets and no cap, as before.

Everything binds 127.0.0.1. Ray's token authentication is on (RAY_AUTH_MODE=token)
with a token file in the work directory, shared by the cluster and its clients.

With `mtls=True` the scheduler requires mutual TLS (docs/security.md): a CA and
certificates in `workdir/certs` (`write_cert_set`), each agent presenting its site's,
and `client(user)` and the cluster's own health checks a user's (tenant or operator).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scheduler.client import Client
from scheduler.server.certs import CertSet, write_cert_set

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent  # the repository: examples/ (Serve applications) import from here


PICKED_PORTS = range(20000, 32000)  # above Ray's worker ports (10002-19999), below Linux's ephemeral range (32768-60999)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a process started later. Picked outside the ephemeral
    range: Ray's components bind port 0, and one of them could otherwise take an ephemeral
    port picked here before the process it was picked for binds it."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(PICKED_PORTS)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_client_env(token_path: Path) -> dict[str, str]:
    """Environment for Ray processes and clients: token auth with a shared token file."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path), "RAY_USAGE_STATS_ENABLED": "0"}


def site_resource(site_id: str) -> str:
    return f"powerplane_site_{site_id}"


@dataclass(frozen=True)
class MinerGroupSpec:
    """A rack of miners the agent drives through pyasic_rs (addresses, ranges or CIDR blocks)."""

    group_id: str
    miners: tuple[str, ...]


@dataclass(frozen=True)
class FleetSpec:
    """A miner fleet: `model` is a key of MINER_MODELS; None keeps the model's figure.
    Without `groups` the agent emulates the fleet in-process; with them it drives real
    (or emulated, see agents/emulator) miners at those addresses through pyasic_rs."""

    fleet_id: str
    model: str
    count: int
    ramp_down_s: float | None = None
    ramp_up_s: float | None = None
    standby_w: float | None = None  # per miner
    groups: tuple[MinerGroupSpec, ...] = ()
    emulator_base: str = ""  # the LocalCluster hosts these miners in an emulator from this address


def can_host_miners(address: str = "127.50.255.1") -> bool:
    """Whether this process may listen on the miners' port 80 (root or CAP_NET_BIND_SERVICE)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, 80))
        except PermissionError:
            return False
    return True


def emulated_fleet(fleet_id: str, model: str, count: int, base: str, group_size: int = 250, ramp_down_s=None, ramp_up_s=None) -> FleetSpec:
    """A fleet of `count` emulated Braiins OS miners from loopback address `base`, in racks of `group_size`."""
    from agents.emulator.fleet import loopback_addresses

    addresses = loopback_addresses(base, count)
    groups = tuple(MinerGroupSpec(f"{fleet_id}-r{i // group_size + 1}", tuple(addresses[i : i + group_size])) for i in range(0, count, group_size))
    return FleetSpec(fleet_id, model, count, ramp_down_s, ramp_up_s, groups=groups, emulator_base=base)


@dataclass(frozen=True)
class SitePowerSpec:
    interconnect_cap_mw: float
    cooling: str = "air"  # air | hydro
    overhead: float | None = None  # None: the cooling's default
    gpu_load_w: float = 1000.0
    gpu_idle_w: float = 150.0
    market_node: str = ""
    miner_poll_s: float = 1.0
    fleets: tuple[FleetSpec, ...] = ()

    def site_config(self) -> dict:
        """The agent's site config file, as data."""
        config = {k: v for k, v in dataclasses.asdict(self).items() if k != "fleets" and v is not None}
        skip = {"groups", "emulator_base"}
        config["fleets"] = [{k: v for k, v in dataclasses.asdict(f).items() if v is not None and k not in skip} for f in self.fleets]
        for fleet, spec in zip(config["fleets"], self.fleets):
            if spec.groups:
                fleet["groups"] = [{"group_id": g.group_id, "miners": list(g.miners)} for g in spec.groups]
        return config

    def emulated_in_agent(self) -> SitePowerSpec:
        """The same fleets without miner addresses: the agent emulates them itself (no ports needed)."""
        return dataclasses.replace(self, fleets=tuple(dataclasses.replace(f, groups=(), emulator_base="") for f in self.fleets))

    @property
    def drives_miners(self) -> bool:
        return any(f.groups for f in self.fleets)


@dataclass
class SiteSpec:
    site_id: str
    region: str
    gpus: int
    cpus: int = 1
    power: SitePowerSpec | None = None  # None: no fleets, no cap


class ProcessExited(Exception):
    """A child process (a `ray start`, an emulator) exited before it was ready."""


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ProcessExited:
            raise  # no point waiting for a process that is gone
        except Exception as err:  # keep trying until the deadline
            last_error = err
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


class Process:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]):
        self.name, self.argv, self.log_path, self.env = name, argv, log_path, env
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown."""
        if self.alive:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def terminate(self) -> None:
        if self.alive:
            os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within timeout_s."""
        if not self.alive:
            return
        self.terminate()
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class SchedulerReplica:
    """One scheduler replica sharing its store with others (`leadership:` in its config):
    its config file in `workdir` (tokens from `tokens.yaml` there, one SQLite file
    `shared.db`, or PostgreSQL when `dsn` is given) and its process, not started.
    `leadership` may override `advertise` (the config's; $POWERPLANE_ADVERTISE, set to
    `listen`, wins); `wrap` prefixes the command (e.g. `ip netns exec NS`); `settings` adds
    scheduler.yaml keys and `env` replaces os.environ as the base of its environment."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        leadership: dict,
        listen: str = "",
        dsn: str | None = None,
        wrap: tuple[str, ...] = (),
        settings: dict | None = None,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.address = listen or f"127.0.0.1:{free_port()}"
        config = {
            "database": "shared.db",
            "regions": ["us"],
            "tokens_file": "tokens.yaml",
            **(settings or {}),  # more scheduler.yaml keys (a LocalCluster's, see powerplane_dev/replicas.py)
            "listen": self.address,
            "leadership": {"advertise": self.address, "replica_id": name, **leadership},
        }
        if dsn is not None:
            dsn_file = workdir / f"{name}.dsn"
            dsn_file.write_text(dsn)
            dsn_file.chmod(0o600)
            config["store"] = {"postgres": {"dsn_file": dsn_file.name}}
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        argv = [*wrap, str(BIN / "powerplane"), "scheduler", "--config", str(path)]
        env = {**(os.environ if env is None else env), "POWERPLANE_ADVERTISE": self.address, "PYTHONUNBUFFERED": "1"}
        self.process = Process(name, argv, workdir / "logs" / f"{name}.log", env)

    def health(self) -> int | None:
        """Its gRPC health (SERVING: it leads; NOT_SERVING: it stands by), None if it does not answer."""
        from scheduler.client import channel as open_channel

        try:
            with open_channel(self.address) as ch:
                return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
        except grpc.RpcError:
            return None


@dataclass
class LocalCluster:
    workdir: Path
    sites: list[SiteSpec]
    regions: tuple[str, ...] = ("us", "eu")
    site_timeout_s: float = 30.0
    heartbeat_interval_s: float = 5.0
    tenants: tuple[str, ...] = ("acme", "globex")
    tls: tuple[Path, ...] | None = None  # (cert, key[, ca]) to serve TLS; the clients trust ca, else the cert itself
    mtls: bool = False  # True: certificates in workdir/certs, the scheduler requires a client certificate (sets `tls`)
    scheduler_settings: dict = field(default_factory=dict)  # more scheduler.yaml keys (e.g. mining dwell times)
    miner_groups_on_ray: bool = True  # False: agents drive their miner groups in their own process (no --ray-gcs-address)
    # True: each Ray node's dashboard agent listens on a port of its own, not Ray's fixed 52365,
    # which only one node on a machine can hold: the other nodes' agents would serve no job logs
    # (`powerplane logs`), and another local cluster's head may hold it already.
    own_agent_ports: bool = True
    scheduler_port: int = field(default_factory=free_port)
    ray_gcs_port: int = field(default_factory=free_port)
    ray_dashboard_port: int = field(default_factory=free_port)
    serve_http_port: int = field(default_factory=free_port)  # Ray Serve's HTTP proxy (inference runs), on 127.0.0.1
    metrics_port: int = field(default_factory=free_port)  # the scheduler's /metrics, on 127.0.0.1
    dashboard_port: int = field(default_factory=free_port)  # the scheduler's web dashboard, on 127.0.0.1
    agent_metrics_ports: dict[str, int] = field(default_factory=dict)  # site -> its agent's /metrics port, on 127.0.0.1
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    ray_nodes: list[Process] = field(default_factory=list)
    scheduler: Process | None = None
    emulators: list[Process] = field(default_factory=list)
    agents: dict[str, Process] = field(default_factory=dict)
    certs: CertSet | None = None  # with mtls, once the scheduler's config is written

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.tokens:
            self.tokens = {
                "tenants": {t: secrets.token_hex(16) for t in self.tenants},
                "operators": {"ops": secrets.token_hex(16)},
                "sites": {s.site_id: secrets.token_hex(16) for s in self.sites},
            }
        # Ray reads its auth mode once per process: a client process that imported ray
        # before this point must already have these variables (see ray_client_env()).
        token_path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or self.workdir / "ray_auth_token")
        if not token_path.exists():
            token_path.write_text(secrets.token_hex(32))
            token_path.chmod(0o600)
        ray_env = ray_client_env(token_path)
        if "ray" in sys.modules and os.environ.get("RAY_AUTH_MODE") != "token":
            raise RuntimeError("ray was imported before RAY_AUTH_MODE=token was set; set it first (see ray_client_env)")
        os.environ.update(ray_env)
        self.env = dict(os.environ)
        self.env.update(ray_env, RAY_DASHBOARD_ADDRESS=self.ray_address, PYTHONUNBUFFERED="1")
        # Serve replicas import their application (examples.inference.service:app) from the repository,
        # and Ray reports metrics (Serve's request counters: the demand signal) every second.
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env.setdefault("RAY_metrics_report_interval_ms", "1000")

    # ----------------------------------------------------------------- addresses
    @property
    def ray_address(self) -> str:
        return f"http://127.0.0.1:{self.ray_dashboard_port}"

    @property
    def scheduler_target(self) -> str:
        return f"127.0.0.1:{self.scheduler_port}"

    @property
    def tls_ca(self) -> bytes | None:
        return self.tls[-1 if len(self.tls) > 2 else 0].read_bytes() if self.tls else None

    def tenant_token(self, tenant: str) -> str:
        return self.tokens["tenants"][tenant]

    @property
    def operator_token(self) -> str:
        return self.tokens["operators"]["ops"]

    def tls_identity(self, user: str = "ops") -> tuple[bytes, bytes] | None:
        """With mtls, (key, certificate) of `user` (a tenant or operator) for `Client(tls_identity=)`; else None."""
        return None if self.certs is None else tuple(p.read_bytes() for p in reversed(self.certs.clients[user]))

    def client(self, user: str = "ops", **kwargs) -> Client:
        """A Client with `user`'s token (a tenant or operator) and, with TLS, the cluster's CA and mtls the user's certificate."""
        token = self.tokens["tenants"].get(user) or self.tokens["operators"][user]
        return Client(self.scheduler_target, token, tls_ca=self.tls_ca, tls_identity=self.tls_identity(user), **kwargs)

    # ----------------------------------------------------------------- Ray
    def start_ray(self, timeout_s: float = 240.0, attempts: int = 3) -> None:
        """One Ray node per site: the first is the head (GCS + dashboard + Jobs API).

        Worker nodes join one at a time (several raylets starting at once on a small
        machine can time out registering with the GCS); a node whose `ray start` gave
        up is started again, up to `attempts` times."""
        ray = str(BIN / "ray")
        common = ["--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
        for index, site in enumerate(self.sites):
            node = ["--num-gpus", str(site.gpus), "--num-cpus", str(site.cpus), "--resources", f'{{"{site_resource(site.site_id)}": 1000}}']
            if self.own_agent_ports:
                node.append(f"--dashboard-agent-listen-port={free_port()}")
            if index == 0:
                argv = [
                    ray,
                    "start",
                    "--head",
                    f"--port={self.ray_gcs_port}",
                    "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={self.ray_dashboard_port}",
                    f"--temp-dir={self._ray_temp()}",
                ]
            else:
                argv = [ray, "start", f"--address=127.0.0.1:{self.ray_gcs_port}"]
            log_path = self.workdir / "logs" / f"ray-{site.site_id}.log"
            for attempt in range(1, attempts + 1):
                process = Process(f"ray-{site.site_id}", argv + common + node, log_path, self.env).start()
                try:
                    if index == 0:
                        wait_for(lambda p=process: self._alive(p) and self._jobs_api_up(), timeout_s, "Ray's Jobs API")
                    else:
                        wait_for(lambda p=process, n=index + 1: self._alive(p) and self._alive_ray_nodes() >= n, timeout_s, f"Ray node {site.site_id} to join")
                    self.ray_nodes.append(process)
                    break
                except (TimeoutError, ProcessExited) as err:
                    process.kill()
                    if attempt == attempts:
                        tail = "" if isinstance(err, ProcessExited) else f"\n{process.tail(20)}"  # ProcessExited carries it
                        raise TimeoutError(f"Ray node {site.site_id} did not start after {attempts} attempts: {err}{tail}") from err
                    time.sleep(2.0)

    @staticmethod
    def _alive(process: Process) -> bool:
        """True while `process` runs; ends a wait_for at once (with its log's tail) when it exited."""
        if not process.alive:
            raise ProcessExited(f"{process.name} exited:\n{process.tail(20)}")
        return True

    def _ray_temp(self) -> str:
        # Ray's socket paths must stay short: keep its temp dir near the root.
        path = Path("/tmp") / f"pp-ray-{self.ray_gcs_port}"
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def _jobs_api_up(self) -> bool:
        from ray.job_submission import JobSubmissionClient

        JobSubmissionClient(self.ray_address).get_version()
        return True

    def wait_jobs_accepted(self, timeout_s: float = 180.0) -> None:
        """Wait until Ray's Jobs API takes a job: on a loaded machine the head's job agent can come
        up well after the API answers ("No available agent to submit job"). A no-op job, sent until taken."""
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(self.ray_address)
        wait_for(lambda: client.submit_job(entrypoint="true", metadata={"powerplane_probe": "1"}), timeout_s, "Ray's Jobs API to take a job", interval_s=1.0)

    def ray_jobs(self, site_id: str | None = None) -> list:
        """The Ray jobs the agents submitted, from Ray's Jobs API (JobDetails: a run each, its
        submission id the run id, its Powerplane job in metadata["powerplane_job"]); one site's if given."""
        from ray.job_submission import JobSubmissionClient

        found = JobSubmissionClient(self.ray_address).list_jobs()
        return [j for j in found if "powerplane_job" in (j.metadata or {}) and site_id in (None, j.metadata.get("powerplane_site"))]

    def _alive_ray_nodes(self) -> int:
        from ray.util.state import list_nodes

        return sum(1 for n in list_nodes(address=self.ray_address, raise_on_missing_output=False) if n.state == "ALIVE")

    # ----------------------------------------------------------------- scheduler
    def scheduler_config(self) -> dict:
        """The scheduler's settings, without its listen addresses; writes tokens.yaml, which they name."""
        config = {
            "database": "powerplane.db",
            "regions": list(self.regions),
            "site_timeout_s": self.site_timeout_s,
            "heartbeat_interval_s": self.heartbeat_interval_s,
            "schedule_interval_s": 1.0,
            "tokens_file": "tokens.yaml",
            **self.scheduler_settings,
        }
        if self.mtls and self.certs is None:
            users = [*self.tokens["tenants"], *self.tokens["operators"]]
            self.certs = write_cert_set(self.workdir / "certs", sites=list(self.tokens["sites"]), clients=users)
            self.tls = (*self.certs.server, self.certs.ca_cert)
        if self.tls:
            config["tls"] = {"cert_file": str(self.tls[0]), "key_file": str(self.tls[1])}
        if self.certs is not None:
            config["tls"]["client_ca_file"] = str(self.certs.ca_cert)  # every connection must present a certificate
        tokens_path = self.workdir / "tokens.yaml"
        tokens_path.write_text(yaml.safe_dump(self.tokens))
        tokens_path.chmod(0o600)
        return config

    def write_config(self) -> Path:
        config = {
            "listen": self.scheduler_target,
            "metrics_listen": f"127.0.0.1:{self.metrics_port}",
            "dashboard_listen": f"127.0.0.1:{self.dashboard_port}",
            **self.scheduler_config(),
        }
        path = self.workdir / "scheduler.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start_scheduler(self, timeout_s: float = 60.0) -> Process:
        config = self.write_config()
        argv = [str(BIN / "powerplane"), "scheduler", "--config", str(config)]
        self.scheduler = Process("scheduler", argv, self.workdir / "logs" / "scheduler.log", self.env).start()
        wait_for(self._scheduler_serving, timeout_s, "the scheduler's health check")
        return self.scheduler

    def _scheduler_serving(self) -> bool:
        if self.scheduler is not None and not self.scheduler.alive:
            raise RuntimeError(f"scheduler exited:\n{self.scheduler.tail()}")
        from scheduler.client import channel as open_channel

        with open_channel(self.scheduler_target, self.tls_ca, self.tls_identity()) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            return response.status == health_pb2.HealthCheckResponse.SERVING

    # ----------------------------------------------------------------- agents
    def start_agent(self, site: SiteSpec) -> Process:
        token_file = self.workdir / f"agent-{site.site_id}.token"
        token_file.write_text(self.tokens["sites"][site.site_id])
        token_file.chmod(0o600)
        argv = [
            str(BIN / "powerplane"),
            "agent",
            "--site",
            site.site_id,
            "--region",
            site.region,
            "--scheduler",
            self.scheduler_target,
            "--token-file",
            str(token_file),
            "--ray-address",
            self.ray_address,
            "--ray-site-resource",
            site_resource(site.site_id),
            "--gpu-model",
            "virtual-H100",
            # Serve inference runs need a driver connection to the cluster; the proxy binds loopback.
            "--ray-gcs-address",
            f"127.0.0.1:{self.ray_gcs_port}",
            "--serve-http-port",
            str(self.serve_http_port),
            "--serve-demand-window-s",
            "3",
            "--metrics-listen",
            f"127.0.0.1:{self.agent_metrics_ports.setdefault(site.site_id, free_port())}",
        ]
        if self.certs is not None:
            cert, key = self.certs.sites[site.site_id]
            argv += ["--tls-ca", str(self.certs.ca_cert), "--tls-cert", str(cert), "--tls-key", str(key)]
        if site.power is not None:
            site_config = self.workdir / f"site-{site.site_id}.yaml"
            site_config.write_text(yaml.safe_dump(site.power.site_config(), sort_keys=False))
            argv += ["--site-config", str(site_config)]
            if site.power.drives_miners and not self.miner_groups_on_ray:  # else its miner groups run as Ray actors on the site's nodes
                argv += ["--miner-groups-in-agent"]
        env = self.env if self.miner_groups_on_ray else {k: v for k, v in self.env.items() if k != "POWERPLANE_RAY_GCS_ADDRESS"}
        process = Process(f"agent-{site.site_id}", argv, self.workdir / "logs" / f"agent-{site.site_id}.log", env).start()
        self.agents[site.site_id] = process
        return process

    def start_agents(self) -> None:
        for site in self.sites:
            self.start_agent(site)

    def wait_sites_ready(self, client, timeout_s: float = 60.0, site_ids: list[str] | None = None) -> None:
        from scheduler.api.v1 import types_pb2

        wanted = set(site_ids or [s.site_id for s in self.sites])

        def ready() -> bool:
            states = {s.site_id: s.state for s in client.sites().sites}
            return all(states.get(site_id) == types_pb2.SITE_STATE_READY for site_id in wanted)

        wait_for(ready, timeout_s, f"sites {sorted(wanted)} READY")

    # ----------------------------------------------------------------- teardown
    # ----------------------------------------------------------------- miners
    def start_miner_emulators(self, timeout_s: float = 60.0, paused: bool = True) -> None:
        """One emulator process per emulated fleet (agents/emulator: Braiins OS on 127.x.y.z, ports 80 and 4028).
        The miners start paused (a site the agent takes over curtailed); `paused=False` starts them hashing at full power."""
        for site in self.sites:
            for fleet in site.power.fleets if site.power else ():
                if not fleet.emulator_base:
                    continue
                argv = [sys.executable, "-m", "agents.emulator", "--count", str(fleet.count), "--model", fleet.model, "--base", fleet.emulator_base]
                if paused:
                    argv.append("--paused")
                for flag, value in (("--ramp-down-s", fleet.ramp_down_s), ("--ramp-up-s", fleet.ramp_up_s)):
                    if value is not None:
                        argv += [flag, str(value)]
                process = Process(f"miners-{fleet.fleet_id}", argv, self.workdir / "logs" / f"miners-{fleet.fleet_id}.log", self.env).start()
                self.emulators.append(process)
                wait_for(lambda p=process: self._alive(p) and '"event": "ready"' in p.tail(50), timeout_s, f"the miner emulator of {fleet.fleet_id}")

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        for node in self.ray_nodes:  # all at once: each takes seconds to wind down
            node.terminate()
        for node in self.ray_nodes:
            node.stop(timeout_s=15)
        for emulator in self.emulators:
            emulator.stop()
