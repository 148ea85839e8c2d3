"""`powerplane simulate`: its arguments, loading the scenario, running it with a
progress line, and writing summary.json, timeseries.csv and power.png.

With no arguments it replays the first week of the ERCOT trace (real-time prices,
day-ahead as the forecast) over examples/sim/sites.yaml and examples/sim/events.yaml,
with jobs generated from the Azure inference trace (see workload.py); capped training
runs at the speed curve derived from the Zeus files (zeus.py; the built-in copy when
they are absent). The traces come from the data folder of scheduler/sim/data.py
(--data-dir, else $POWERPLANE_DATA_DIR, else ../shared/data, else the sample shipped in
the package, which a note on stderr names). Bad or missing input files exit with
code 2 and one line naming the file and the line or field, or the options that choose
another; the wall clock is read only to show progress.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from scheduler.core.priority import PreemptionPolicy
from scheduler.sim import data as datasets
from scheduler.sim import workload
from scheduler.sim.engine import Scenario, SimConfig, Simulator
from scheduler.sim.files import InputError, iso, parse_time
from scheduler.sim.scenario import load_arrivals, load_events, load_sites
from scheduler.sim.traces import DAY_AHEAD_COLUMN, REAL_TIME_COLUMN, load_hashprice, load_prices, load_prices_and_forecast
from scheduler.sim.zeus import speed_curve_from

REPO = datasets.REPO


def add_parser(sub) -> argparse.ArgumentParser:
    """Register `simulate` on the `powerplane` subcommands."""
    p = sub.add_parser("simulate", help="replay price, job and grid-event traces through the scheduler's core on a fake clock")
    p.add_argument("--data-dir", type=Path, default=None, help="data folder (default: $POWERPLANE_DATA_DIR, else ../shared/data beside the repo, else the sample in the package)")
    p.add_argument("--prices", type=Path, help=f"real-time price CSV (default: DATA_DIR/{datasets.ERCOT})")
    p.add_argument("--forecast", help="day-ahead price CSV, or 'none' (default: the prices file's day-ahead column when it has one)")
    p.add_argument("--hashprice", default="45", help="USD/PH/day: a number, or a CSV time,usd_per_ph_day (default: 45)")
    p.add_argument("--sites", type=Path, default=REPO / "examples" / "sim" / "sites.yaml", help="sites YAML (default: examples/sim/sites.yaml)")
    p.add_argument("--arrivals", type=Path, help="job arrivals CSV (default: generated from the Azure trace and Poisson training)")
    p.add_argument("--azure-trace", type=Path, action="append", help=f"Azure LLM inference trace CSV, repeatable (default: DATA_DIR/{datasets.AZURE})")
    p.add_argument(
        "--events", default=str(REPO / "examples" / "sim" / "events.yaml"), help="grid events YAML/CSV, or 'none' (default: examples/sim/events.yaml)"
    )
    p.add_argument("--start", help="ISO time to start at (default: the price trace's first timestamp)")
    p.add_argument("--end", help="ISO time or offset like +3d to stop at (default: start + --days)")
    p.add_argument("--days", type=float, default=7.0, help="days to simulate when --end is not given (default: 7)")
    p.add_argument("--tick-s", type=float, default=60.0, help="fake-clock tick (default: 60)")
    p.add_argument("--order-delay-s", type=float, default=1.0, help="scheduler -> agent order latency (default: 1)")
    p.add_argument("--reading-delay-s", type=float, default=None, help="agent -> scheduler reading latency (default: one tick)")
    p.add_argument("--inference-share", type=float, default=0.30, help="generated inference at its peak, as a share of all GPUs (default: 0.30)")
    p.add_argument("--training-share", type=float, default=0.35, help="generated training, as an average share of all GPUs (default: 0.35)")
    p.add_argument("--inference-slo-s", type=float, default=300.0, help="inference waiting longer than this for GPUs misses its SLO (default: 300)")
    p.add_argument("--deadline-factor", type=float, default=2.0, help="training finishing after arrival + this x its duration misses its SLO (default: 2)")
    p.add_argument(
        "--mining-policy", choices=("breakeven", "outlook"), default="breakeven", help="the scheduler's mining.policy (default: breakeven; docs/power.md)"
    )
    p.add_argument(
        "--min-run-s", type=float, default=600.0, help="preemption for priority: a run is not preempted within this of its start (default: 600)"
    )
    p.add_argument("--no-priority-preemption", action="store_true", help="placement does not stop lower-priority training for a waiting job")
    p.add_argument("--out", type=Path, default=Path("sim-out"), help="output folder (default: sim-out/)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated jobs (default: 1)")
    p.set_defaults(run=run)
    return p


class Progress:
    """A one-line progress report on stderr, at most every `every_s` seconds."""

    def __init__(self, every_s: float = 2.0, stream=None):
        self.every_s, self.stream = every_s, stream or sys.stderr
        self.began = self.last = time.monotonic()
        self.tty = getattr(stream, "isatty", lambda: False)()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s and done < total:
            return
        self.last = now
        rate = done / max(1e-9, now - self.began)
        eta = (total - done) / max(1e-9, rate)
        line = f"simulating {100 * done / total:5.1f}% ({done:,}/{total:,} ticks, {rate:,.0f} ticks/s, {eta:,.0f} s left)"
        self.stream.write(("\r" + line + ("\n" if done >= total else "")) if self.tty else line + "\n")
        self.stream.flush()


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise InputError(name, f"must be > 0, got {value:g}")


def _price_file(args: argparse.Namespace, data: Path) -> Path:
    """--prices, else the ERCOT trace in the data folder; InputError naming the options."""
    if args.prices:
        if not args.prices.is_file():
            raise InputError(args.prices, f"no such file (--prices); leave --prices out for the data folder's ERCOT trace: {datasets.choose('--data-dir')}")
        return args.prices
    try:
        return datasets.find(data, datasets.ERCOT, file_flag="--prices", data_flag="--data-dir")
    except datasets.MissingData as err:
        raise InputError("--prices", str(err)) from None


def load_scenario(args: argparse.Namespace) -> tuple[Scenario, SimConfig]:
    data = args.data_dir or datasets.data_dir()
    for name in ("tick_s", "days"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    if args.order_delay_s < 0 or (args.reading_delay_s is not None and args.reading_delay_s < 0):
        raise InputError("--order-delay-s/--reading-delay-s", "delays must be >= 0")
    prices_path = _price_file(args, data)
    if datasets.is_sample(prices_path):
        print(f"powerplane simulate: using the sample data shipped in the package ({datasets.SAMPLE_DIR}, see its SOURCES.md); {datasets.choose('--data-dir', default=False)}", file=sys.stderr)
    prices, day_ahead = load_prices_and_forecast(prices_path)
    if args.forecast and args.forecast.lower() == "none":
        forecast = None
    elif args.forecast:
        forecast = load_prices(Path(args.forecast), forecast=True)
    else:
        forecast = day_ahead
    try:
        start = parse_time(args.start) if args.start else prices.start
        end = parse_time(args.end, start) if args.end else start + args.days * 86400.0
    except ValueError as err:
        raise InputError("--start/--end", str(err)) from None
    if not prices.start <= start < prices.end:
        hint = f" (the sample's two weeks; {datasets.choose('--data-dir', default=False)} for the full trace)" if datasets.is_sample(prices_path) else ""
        raise InputError("--start", f"{iso(start)} is outside the price trace {prices.path} ({iso(prices.start)} .. {iso(prices.end)}){hint}")
    end = min(end, prices.end)
    if end <= start:
        raise InputError("--end", "must be after --start")
    sites = load_sites(args.sites)
    for spec in sites:
        for trace in filter(None, (prices, forecast)):
            try:
                trace.node_column(spec.market_node, REAL_TIME_COLUMN if trace is prices else DAY_AHEAD_COLUMN)
            except KeyError as err:
                raise InputError(args.sites, err.args[0], None, f"{spec.site_id}.market_node") from None
    events = [] if str(args.events).lower() == "none" else load_events(Path(args.events), start, sites)
    if args.arrivals:
        arrivals = load_arrivals(args.arrivals)
    else:
        azure = args.azure_trace or datasets.find_all(data, datasets.AZURE)
        if not azure:
            print(f"powerplane simulate: no Azure trace in {data}: generating training jobs only", file=sys.stderr)
        total_gpus = sum(s.power.gpus for s in sites)
        max_gpus = max(s.power.gpus for s in sites)
        arrivals = workload.generate(list(azure), total_gpus, max_gpus, end - start, args.seed, args.inference_share, training_share=args.training_share)
    scenario = Scenario(tuple(sites), prices, forecast, load_hashprice(args.hashprice), tuple(arrivals), tuple(events), start, end)
    speed, speed_source = speed_curve_from(data)
    config = SimConfig(
        speed=speed,
        speed_source=speed_source,
        tick_s=args.tick_s,
        order_delay_s=args.order_delay_s,
        reading_delay_s=args.reading_delay_s,
        inference_slo_s=args.inference_slo_s,
        training_deadline_factor=args.deadline_factor,
        policy=dataclasses.replace(SimConfig().policy, policy=args.mining_policy),
        preemption=PreemptionPolicy(enabled=not args.no_priority_preemption, min_run_s=args.min_run_s),
    )
    return scenario, config


def run(args: argparse.Namespace) -> int:
    from scheduler.sim.plot import PlotUnavailable, plot_power, require_matplotlib
    from scheduler.sim.report import TimeseriesWriter, format_summary, summarize, write_summary

    try:
        require_matplotlib()  # before the run, not after it
    except PlotUnavailable as err:
        print(f"powerplane simulate: {err}", file=sys.stderr)
        return 2
    try:
        scenario, config = load_scenario(args)
    except InputError as err:
        print(f"powerplane simulate: {err}", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        with TimeseriesWriter(args.out / "timeseries.csv") as rows:  # streamed as the ticks complete
            sim = Simulator(scenario, config, rows=rows).run(None if args.quiet else Progress())
        summary = summarize(sim)
        write_summary(summary, args.out / "summary.json")
        plot_power(sim, args.out / "power.png", args.out / "timeseries.csv")
    except OSError as err:
        print(f"powerplane simulate: cannot write {args.out}: {err}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    print(f"wrote {args.out / 'summary.json'}, {args.out / 'timeseries.csv'}, {args.out / 'power.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m scheduler.sim.cli`: the same command without the rest of `powerplane`."""
    parser = argparse.ArgumentParser(prog="powerplane")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
