"""What the metrics cost: durable SubmitJob throughput with /metrics on and off, side by
side, and one scrape of a 100-site system.

Throughput: bench/submit_throughput.py's load (8 clients in 2 processes, 1,000 jobs) on
a real scheduler with no sites, once with `metrics_listen` and `dashboard_listen` off and
once with /metrics on and scraped every 0.5 s during the load (a scrape interval far
shorter than any Prometheus would use), in alternating rounds, each on a fresh scheduler
and database; the medians are reported.

Scrape: bench/scheduler_scale.py's small shape in process (100 sites, 2 to 4 fleets
each, 1,000 running jobs, 100 pending, real SQLite), one heartbeat from every site and
a dispatch pass, then /metrics served over HTTP from its own thread (as in the
scheduler) and scraped 20 times: the median time of one scrape, and how many series it
returns.

    .venv/bin/python bench/metrics_overhead.py [--jobs 1000] [--rounds 3]

Prints figures, then one JSON line: jobs_per_s_metrics_on, jobs_per_s_metrics_off,
throughput_cost_pct, scrape_ms, series (goals: cost < 5 %, scrape < 100 ms).
Run it inside a network namespace (see README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import scheduler_scale  # noqa: E402
import submit_throughput  # noqa: E402

GOAL_COST_PCT, GOAL_SCRAPE_MS = 5.0, 100.0
SCRAPES = 20


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


class Scraper:
    """Scrapes /metrics every `period_s` in a thread until stopped; counts the scrapes."""

    def __init__(self, port: int, period_s: float = 0.5):
        self.port, self.period_s = port, period_s
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            scrape(self.port)
            self.count += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def submit_round(metrics_on: bool, jobs: int, clients: int, processes: int) -> tuple[float, int]:
    """jobs/s of one round on a fresh scheduler, and how many scrapes ran during it."""
    from powerplane_dev.cluster import LocalCluster

    settings = {} if metrics_on else {"metrics_listen": "", "dashboard_listen": ""}
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pp-bench-metrics-")), [], site_timeout_s=30, heartbeat_interval_s=5, scheduler_settings=settings)
    try:
        cluster.start_scheduler()
        target, token = cluster.scheduler_target, cluster.tenant_token("acme")
        if metrics_on:
            scrape(cluster.metrics_port)  # it answers before the clock starts
            with Scraper(cluster.metrics_port) as scraper:
                seconds = submit_throughput.measure("submit", target, token, jobs, clients, processes)
            return jobs / seconds, scraper.count
        return jobs / submit_throughput.measure("submit", target, token, jobs, clients, processes), 0
    finally:
        cluster.stop()


async def hundred_site_scrape() -> tuple[float, int, int]:
    """(median ms of one HTTP scrape, series in it, bytes) for the 100-site shape."""
    from prometheus_client.parser import text_string_to_metric_families

    from scheduler.core.runs import RunReport, RunState
    from scheduler.core.sites import GpuNode
    from scheduler.server.config import SchedulerConfig
    from scheduler.server.controller import Controller
    from scheduler.server.metrics import SchedulerMetrics
    from scheduler.store.sqlite import SqliteStore

    shape = scheduler_scale.SMALL
    rng = random.Random(7)
    powers = [scheduler_scale.site_power(i, shape, rng) for i in range(shape.sites)]
    jobs, runs_by_site = scheduler_scale.build_jobs(shape, rng)
    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-scrape-"))
    store = SqliteStore(workdir / "pp.db")
    store.commit(jobs, [], [])
    config = SchedulerConfig(
        regions=list(scheduler_scale.REGIONS), database=workdir / "pp.db", schedule_interval_s=3600, power_interval_s=3600, site_timeout_s=7200, heartbeat_interval_s=1
    )
    clock = scheduler_scale.Clock()
    controller = Controller(store, config, clock)
    await controller.start(loops=False)
    try:
        agents = {}
        for i, power in enumerate(powers):
            agent = agents[power.site_id] = scheduler_scale.Agent(power, runs_by_site[power.site_id])
            nodes = tuple(GpuNode(f"{power.site_id}-n{k}", "H100", 10) for k in range(max(1, shape.gpus_per_site // 10)))
            agent.session = await controller.attach(power.site_id, scheduler_scale.REGIONS[i % 3], nodes, [RunReport(r, RunState.RUNNING) for r in agent.running], power)
        for _ in range(2):
            clock.now += 1.0
            for sid, agent in agents.items():
                agent.take_orders()
                reports, reading = agent.heartbeat()
                await controller.on_run_reports(sid, reports)
                await controller.on_reading(sid, reading)
            await controller.schedule_once()
            await controller.dispatch_power(sweep=True)
        metrics = SchedulerMetrics(controller, asyncio.get_running_loop())
        port = metrics.serve("127.0.0.1", 0)
        text = await asyncio.to_thread(scrape, port)  # warm
        times = []
        for _ in range(SCRAPES):
            started = time.perf_counter()
            text = await asyncio.to_thread(scrape, port)
            times.append(time.perf_counter() - started)
        series = sum(len(family.samples) for family in text_string_to_metric_families(text))
        return statistics.median(times) * 1000, series, len(text)
    finally:
        await controller.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternating off/on")
    args = parser.parse_args()

    on, off, scrapes = [], [], []
    for r in range(args.rounds):
        rate, _ = submit_round(False, args.jobs, args.clients, args.processes)
        off.append(rate)
        rate, count = submit_round(True, args.jobs, args.clients, args.processes)
        on.append(rate)
        scrapes.append(count)
        print(f"round {r + 1}: metrics off {off[-1]:7.0f} jobs/s, on {on[-1]:7.0f} jobs/s ({count} scrapes during the load)", flush=True)
    scrape_ms, series, size = asyncio.run(hundred_site_scrape())
    on_rate, off_rate = statistics.median(on), statistics.median(off)
    cost = (off_rate - on_rate) / off_rate * 100
    print(f"median: off {off_rate:.0f} jobs/s, on {on_rate:.0f} jobs/s: cost {cost:.1f} % (goal < {GOAL_COST_PCT:.0f} %)")
    print(f"100-site scrape: {scrape_ms:.1f} ms median of {SCRAPES}, {series} series, {size / 1024:.0f} KiB (goal < {GOAL_SCRAPE_MS:.0f} ms)")
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "rounds": args.rounds,
                "jobs_per_s_metrics_on": round(on_rate, 1),
                "jobs_per_s_metrics_off": round(off_rate, 1),
                "throughput_cost_pct": round(cost, 2),
                "scrapes_during_load": scrapes,
                "scrape_ms": round(scrape_ms, 2),
                "series": series,
                "scrape_bytes": size,
                "sites": scheduler_scale.SMALL.sites,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
