"""A LocalCluster whose scheduler is several replicas on one PostgreSQL database
instead of one process, for fail-over with the whole system running (Ray, agents,
emulated miners): tests/integration/test_failover_system.py and `bench/failover.py
--system`. Dev-only, like the rest of powerplane_dev.

It owns the replicas (powerplane_dev.cluster.SchedulerReplica, each given the
cluster's scheduler settings and its own port), starting them (the first leads, the
others stand by), finding the one that leads, killing it, and the comma-separated list
of their addresses that the agents and clients are given as the scheduler's address:
they follow the leader (scheduler/api/leader.py). Ray, the agents and the miner
emulators are LocalCluster's, unchanged.

`SystemSampler` samples what a fail-over must not break, in a thread: each site
agent's /metrics (metered power and the cap it holds, and whether its stream is up).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass, field

from grpc_health.v1 import health_pb2

from powerplane_dev.cluster import LocalCluster, SchedulerReplica, wait_for

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class ReplicatedCluster(LocalCluster):
    """`replica_count` schedulers on the PostgreSQL database at `dsn`, leading by turns
    under `leadership` (lease settings; the config's defaults for those not given)."""

    dsn: str = ""
    replica_count: int = 2
    leadership: dict = field(default_factory=dict)
    replicas: list[SchedulerReplica] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.dsn:
            raise ValueError("a ReplicatedCluster needs a PostgreSQL DSN")
        if self.tls:
            raise ValueError("a ReplicatedCluster serves no TLS (its replicas' health checks are plain)")
        settings = self.scheduler_config()
        self.replicas = [
            SchedulerReplica(self.workdir, f"scheduler-{chr(ord('a') + i)}", self.leadership, dsn=self.dsn, settings=settings, env=self.env)
            for i in range(self.replica_count)
        ]

    @property
    def scheduler_target(self) -> str:
        """Every replica's address, comma-separated: agents and clients follow the leader."""
        return ",".join(r.address for r in self.replicas)

    def start_scheduler(self, timeout_s: float = 60.0):
        """Start the first replica and wait until it leads, then the others until they stand by."""
        first, *others = self.replicas
        first.process.start()
        wait_for(lambda: self._check_alive(first) and first.health() == SERVING, timeout_s, f"{first.name} leading")
        for replica in others:
            replica.process.start()
        for replica in others:
            wait_for(lambda r=replica: self._check_alive(r) and r.health() == NOT_SERVING, timeout_s, f"{replica.name} standing by")
        self.scheduler = first.process
        return first.process

    @staticmethod
    def _check_alive(replica: SchedulerReplica) -> bool:
        if not replica.process.alive:
            raise RuntimeError(f"{replica.name} exited:\n{replica.process.tail()}")
        return True

    def leader(self) -> SchedulerReplica | None:
        """The live replica whose health answers SERVING, or None (also set as `scheduler`)."""
        for replica in self.replicas:
            if replica.process.alive and replica.health() == SERVING:
                self.scheduler = replica.process
                return replica
        return None

    def wait_leader(self, timeout_s: float = 60.0, other_than: SchedulerReplica | None = None) -> SchedulerReplica:
        """Wait until a live replica (not `other_than`) leads; returns it."""
        return wait_for(lambda: (r := self.leader()) is not None and r is not other_than and r, timeout_s, "a scheduler replica leading", interval_s=0.05)

    def kill_leader(self) -> SchedulerReplica:
        """kill -9 the leading replica's process group, as a lost machine would; returns it."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError("no replica leads")
        leader.process.kill()
        return leader

    def stop(self) -> None:
        try:
            super().stop()  # agents first, then Ray and the emulators
        finally:
            for replica in self.replicas:
                replica.process.stop(timeout_s=10)


def scrape(url: str, timeout_s: float = 2.0) -> dict[str, float]:
    """A Prometheus text page as {metric name: value}, the first sample of each name."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, sample.value)
    return found


@dataclass(frozen=True)
class PowerSample:
    at: float  # time.monotonic()
    metered_w: float  # the site's meter power as the agent reads it
    cap_w: float  # the cap the agent holds the site under
    connected: bool  # the agent's stream to the scheduler is up


class SystemSampler:
    """Samples a site agent's /metrics every `interval_s` in a thread, from start() to stop().
    A scrape that fails (the agent busy) is counted in `misses`, never guessed at."""

    def __init__(self, cluster: LocalCluster, site_id: str, interval_s: float = 0.1):
        self.url = f"http://127.0.0.1:{cluster.agent_metrics_ports[site_id]}/metrics"
        self.interval_s = interval_s
        self.samples: list[PowerSample] = []
        self.misses = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{site_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                values = scrape(self.url)
                self.samples.append(
                    PowerSample(
                        time.monotonic(),
                        values["powerplane_agent_metered_watts"],
                        values["powerplane_agent_cap_watts"],
                        values["powerplane_agent_stream_connected"] == 1.0,
                    )
                )
            except Exception:  # noqa: BLE001 - a missed scrape is counted, not fatal
                self.misses += 1
            self._stop.wait(self.interval_s)

    def start(self) -> SystemSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def since(self, start: float) -> list[PowerSample]:
        return [s for s in list(self.samples) if s.at >= start]


def over_cap(samples: list[PowerSample], limit_w: float | None = None, tolerance_w: float = 1.0) -> list[PowerSample]:
    """Samples whose metered power exceeded the cap the agent held, or `limit_w` when given
    (the grid's cap, whatever the agent was told)."""
    return [s for s in samples if s.metered_w > s.cap_w + tolerance_w or (limit_w is not None and s.metered_w > limit_w + tolerance_w)]


def seconds_over(samples: list[PowerSample], limit_w: float | None = None, tolerance_w: float = 1.0) -> float:
    """Time during which metered power exceeded the cap: each sample over it counts until the next sample."""
    bad = {id(s) for s in over_cap(samples, limit_w, tolerance_w)}
    return sum(b.at - a.at for a, b in zip(samples, samples[1:]) if id(a) in bad)
