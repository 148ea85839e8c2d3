"""Scale of the simulator: site-ticks per second and peak memory, by sites and days.

Sites are copies of examples/sim/sites.yaml's two sites (tx-rockdale, tx-small) with
numbered ids, `sites` in all, each copy with its original's grid events from
examples/sim/events.yaml; prices are the data folder's ERCOT trace (scheduler/sim/data.py:
the full trace where ../shared/data is, else the two-week sample, which caps the days),
jobs are the default generated workload (services.py, workload.py) over all GPUs; one
tick a minute. The time series is streamed to a CSV in a temporary folder, as
`powerplane simulate` does. Each configuration runs in its own subprocess, which reports
its own peak RSS (ru_maxrss), so the figures do not mix.

    .venv/bin/python bench/sim_scale.py [--runs 10x3,10x7,50x3,50x7] [--long]

--long adds 50 sites x 30 days. Prints ONE JSON line: {"bench": "sim_scale", "runs":
[{sites, days, site_ticks, wall_s, site_ticks_per_s, peak_rss_mb, jobs}, ...]}; memory
flat in days shows as equal peak_rss_mb at 3 and 7 days.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.sim import data as datasets  # noqa: E402
from scheduler.sim import workload  # noqa: E402
from scheduler.sim.engine import Scenario, SimConfig, Simulator  # noqa: E402
from scheduler.sim.report import TimeseriesWriter, summarize  # noqa: E402
from scheduler.sim.scenario import load_events, load_sites  # noqa: E402
from scheduler.sim.traces import load_hashprice, load_prices_and_forecast  # noqa: E402
from scheduler.sim.zeus import speed_curve_from  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "sim"


def scenario(sites: int, days: float) -> Scenario:
    data = datasets.data_dir()
    prices, forecast = load_prices_and_forecast(datasets.find(data, datasets.ERCOT))
    start = prices.start
    end = min(prices.end, start + days * 86400.0)
    base = load_sites(EXAMPLES / "sites.yaml")
    base_events = load_events(EXAMPLES / "events.yaml", start, base)
    specs, events = [], []
    for n in range(sites):
        spec = base[n % len(base)]
        site_id = f"{spec.site_id}-{n:03d}"
        fleets = tuple(dataclasses.replace(f, fleet_id=f"{site_id}/{f.fleet_id.split('/')[-1]}") for f in spec.power.fleets)
        specs.append(dataclasses.replace(spec, power=dataclasses.replace(spec.power, site_id=site_id, fleets=fleets)))
        events += [dataclasses.replace(e, event_id=f"{e.event_id}@{site_id}", site_id=site_id) for e in base_events if e.site_id == spec.site_id]
    total = sum(s.power.gpus for s in specs)
    largest = max(s.power.gpus for s in specs)
    arrivals = workload.generate(datasets.find_all(data, datasets.AZURE), total, largest, end - start, seed=1)
    return Scenario(tuple(specs), prices, forecast, load_hashprice("45"), tuple(arrivals), tuple(events), start, end)


def one(sites: int, days: float) -> dict:
    """Run one configuration here; its figures, this process's peak RSS included."""
    sc = scenario(sites, days)
    speed, source = speed_curve_from(datasets.data_dir())
    config = SimConfig(speed=speed, speed_source=source)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        with TimeseriesWriter(Path(tmp) / "timeseries.csv") as rows:
            sim = Simulator(sc, config, rows=rows).run()
        summary = summarize(sim)
        wall = time.perf_counter() - began
    site_ticks = sim.tick_count * sites
    return {
        "sites": sites,
        "days": round((sc.end - sc.start) / 86400.0, 3),
        "site_ticks": site_ticks,
        "wall_s": round(wall, 2),
        "site_ticks_per_s": round(site_ticks / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "jobs": summary["jobs"]["arrived"],
        "cap_violations": summary["cap_violations"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="10x3,10x7,50x3,50x7", help="SITESxDAYS, comma-separated")
    parser.add_argument("--long", action="store_true", help="also 50 sites x 30 days")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # SITESxDAYS: run one here, print its JSON
    args = parser.parse_args()
    if args.one:
        sites, days = args.one.split("x")
        print(json.dumps(one(int(sites), float(days))))
        return
    runs = args.runs.split(",") + (["50x30"] if args.long else [])
    results = []
    for run in runs:
        out = subprocess.run([sys.executable, __file__, "--one", run], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"bench": "sim_scale", "runs": results}))


if __name__ == "__main__":
    main()
