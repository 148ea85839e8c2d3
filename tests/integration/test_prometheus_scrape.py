"""A real Prometheus server (Debian's `prometheus`) scrapes the running system: the
scheduler's /metrics and tx-1's agent's, both on loopback in the test's network
namespace. Values read back through Prometheus' HTTP query API must equal what GetSite
reports, and the agent's target must be up with its stream connected.

Skipped, with the reason, where the prometheus binary is absent (scripts/setup.sh
installs it where apt is available)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest
import yaml

from powerplane_dev.cluster import free_port
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def prometheus(ray_system, tmp_path_factory):
    if not shutil.which(PROMETHEUS):
        pytest.skip("prometheus not found: install Debian's prometheus package (scripts/setup.sh does where apt is available)")
    cluster = ray_system.cluster
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "powerplane-scheduler", "static_configs": [{"targets": [f"127.0.0.1:{cluster.metrics_port}"]}]},
            {"job_name": "powerplane-agent", "static_configs": [{"targets": [f"127.0.0.1:{cluster.agent_metrics_ports['tx-1']}"]}]},
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", workdir / "prometheus.log", process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def query(base: str, promql: str) -> dict[tuple, float]:
    """Prometheus' instant query API: {sorted label pairs without __name__: value}."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
    except OSError:
        return {}  # not listening yet
    assert body["status"] == "success", body
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1]) for r in body["data"]["result"]}


def test_prometheus_scrapes_the_scheduler_and_an_agent_and_reads_what_get_site_shows(ray_system, prometheus):
    base, log_path, process = prometheus

    def targets_up() -> bool:
        assert process.poll() is None, f"prometheus exited:\n{log_path.read_text()[-3000:]}"
        up = query(base, "up")
        return sum(1 for v in up.values() if v == 1) == 2

    wait_until(targets_up, 120, "Prometheus scraping both targets")

    def same_as_get_site() -> bool:
        power = ray_system.ops.site("tx-1").site.power
        got = query(base, 'powerplane_site_interconnect_cap_watts{site="tx-1"}')
        cap = query(base, 'powerplane_site_cap_watts{site="tx-1"}')
        return list(got.values()) == [power.interconnect_cap_w] and list(cap.values()) == [power.cap_w]

    wait_until(same_as_get_site, 60, "Prometheus' tx-1 caps equal to GetSite's")

    # The agent's own view: its stream is up and it holds the cap the scheduler sent.
    connected = query(base, 'powerplane_agent_stream_connected{job="powerplane-agent"}')
    assert list(connected.values()) == [1.0], connected
    gpus = query(base, "count(powerplane_agent_gpu_power_limit_watts)")
    assert list(gpus.values()) == [8.0], gpus  # tx-1 has 8 GPUs (the fake NVML: no GPU here)
    jobs_series = query(base, "powerplane_scheduler_pass_seconds_count")
    assert jobs_series, "the scheduler's pass histogram was not scraped"
