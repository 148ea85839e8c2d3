"""What a run reports: summary.json, timeseries.csv and the printed summary.

Money: mining revenue = hashprice x hashrate actually delivered; AI revenue = each
job's value per GPU-hour x the full-power GPU-hours of work it got done (a
power-capped hour earns less); power cost = meter energy x the real-time price of
the interval it was drawn in (negative prices pay); profit = mining + AI - power.
Energy (MWh at the meter, cooling included): curtailed = what every fleet at full
power would have drawn minus what mining drew, split into headroom the cap and AI
left that mining did not use (price, emergencies, dwell, ramps) and power that went
to AI or was cut by the grid.
Training slowdown: the extra time power-capped training ran, summed over jobs, at the
speed curve's relative speed (SimConfig.speed, from Zeus): `training_slowdown_s`, and
how many training jobs were slowed (`training_slowed_jobs`).
Work lost: full-power GPU-hours a stop threw away (done since the run's last checkpoint,
and done again after): `gpu_hours_lost`; it earns nothing (physics.py).
Program revenue and 4CP savings (per site, core/grid_money.py, with SimConfig's program and
tariff): mining's load above its paused floor at the meter, averaged per price interval;
program events by the price proxy (the `program_event_steps` intervals after a settled
real-time price >= `program_event_price`); the 4CP peaks by the proxy the trace allows (it
has no system load): the interval of highest real-time price of each of June-September in
the window, in the clock of `SimConfig.policy.timezone`; the saving is against every fleet
drawing what the cap and AI left it (mining plus its unused headroom) at those intervals,
pro rata for the days simulated. Neither is in `profit_usd` (the books of the plant).
Cap violations: site-ticks in which the meter exceeded the enforced cap at any moment
(also their total seconds and the largest excess).
Priority preemptions: training runs stopped to make room for a higher-priority job
(core/priority.py; also counted in `preemptions`). Training delay: for each training job,
the time from its arrival to its end (or the end of the run) less the work it kept, in
hours summed over jobs (`training_delay_h`): queueing, stops, lost work done again, caps.
SLO misses: an inference job that waited more than `inference_slo_s` for its GPUs
(after arriving, or after being shed); a training job that finished after arrival +
`training_deadline_factor` x its duration, or had not finished by then at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from scheduler.core.grid import GridEventKind
from scheduler.core.grid_money import GridMoney, cp4_usd_per_mw, grid_money, peak_intervals, program_events
from scheduler.sim.engine import Row, Simulator
from scheduler.sim.files import iso

J_PER_MWH = 3.6e9
TIMESERIES_COLUMNS = Row._fields


def site_grid_money(sim: Simulator, view) -> GridMoney:
    """A site's program revenue and 4CP savings (see the module's docstring)."""
    sc, cfg = sim.scenario, sim.config
    if not view.by_interval:
        return GridMoney(0.0, 0.0)
    idx = range(min(view.by_interval), max(view.by_interval) + 1)
    floor, oh = view.spec.power.mining_floor_w, view.spec.power.overhead
    parts = [view.by_interval.get(i, [0.0, 0.0, 0.0]) for i in idx]
    meter = [max(0.0, p[0] / p[2] - floor) * oh / 1e6 if p[2] > 0 else 0.0 for p in parts]
    reference = [max(0.0, p[1] / p[2] - floor) * oh / 1e6 if p[2] > 0 else 0.0 for p in parts]
    real_time = [sc.prices.columns[view.price_column][i] for i in idx]
    zone = ZoneInfo(cfg.policy.timezone)
    months = [datetime.fromtimestamp(sc.prices.times[i], zone).month for i in idx]
    peaks = peak_intervals(real_time, months)
    reference_mw = sum(reference[i] for i in peaks) / len(peaks) if peaks else 0.0
    base = program_events(real_time, cfg.program_event_price, cfg.program_event_steps)
    per_mw = cp4_usd_per_mw(cfg.cp4_usd_per_kw_year, (sc.end - sc.start) / 86400.0)
    return grid_money(meter, sc.prices.interval_s / 3600.0, cfg.program, base, peaks, reference_mw, per_mw)


def _site_summary(sim: Simulator, view) -> dict:
    tot, oh = view.totals, view.spec.power.overhead
    grid = site_grid_money(sim, view)
    curtailed = (tot.nameplate_j - tot.mining_j) * oh / J_PER_MWH
    unused = tot.unused_headroom_j * oh / J_PER_MWH
    return {
        "mining_revenue_usd": round(tot.mining_usd, 2),
        "ai_revenue_usd": round(tot.ai_usd, 2),
        "power_cost_usd": round(tot.power_usd, 2),
        "profit_usd": round(tot.mining_usd + tot.ai_usd - tot.power_usd, 2),
        "program_revenue_usd": round(grid.program_usd, 2),
        "cp4_savings_usd": round(grid.cp4_usd, 2),
        "energy_mwh": round(tot.meter_j / J_PER_MWH, 3),
        "ai_energy_mwh": round(tot.ai_j * oh / J_PER_MWH, 3),
        "mining_energy_mwh": round(tot.mining_j * oh / J_PER_MWH, 3),
        "overhead_energy_mwh": round((tot.ai_j + tot.mining_j) * (oh - 1.0) / J_PER_MWH, 3),
        "energy_curtailed_mwh": round(curtailed, 3),
        "curtailed_unused_headroom_mwh": round(unused, 3),
        "curtailed_for_ai_and_caps_mwh": round(curtailed - unused, 3),
        "peak_meter_mw": round(tot.peak_meter_w / 1e6, 3),
        "cap_violations": view.violation_ticks,
        "cap_violation_s": round(tot.violation_s, 3),
        "max_excess_w": round(tot.max_excess_w, 3),
        "ladder_steps": dict(sorted(view.steps.items())),
        "grid_events": {
            e.event_id: {
                "notice_s": round(e.start - e.notified_at, 3) if e.notified_at else None,
                "over_cap_s": round(view.event_figures.get(e.event_id, (0.0, 0.0))[0], 3),
                "max_excess_w": round(view.event_figures.get(e.event_id, (0.0, 0.0))[1], 3),
            }
            for e in view.events
            if e.kind == GridEventKind.CAP_LIMIT
        },
    }


def _jobs_summary(sim: Simulator) -> dict:
    cfg, end = sim.config, sim.scenario.end
    tally = sim.finished.with_jobs(sim.jobs.values(), end, cfg)
    counts = {"arrived": tally.arrived, **tally.states, "not_arrived": len(sim.scenario.arrivals) - sim.admitted}
    return {
        "jobs": counts,
        "preemptions": tally.preemptions,
        "inference_shed": tally.inference_shed,
        "slo_misses": dict(tally.slo_misses),
        "gpu_hours_of_work": round(tally.work_gpu_h, 1),
        "gpu_hours_lost": round(tally.lost_gpu_h, 1),
        "training_slowdown_s": round(tally.training_slowdown_s, 1),
        "training_slowed_jobs": tally.training_slowed,
        "priority_preemptions": tally.priority_preemptions,
        "training_delay_h": round(tally.training_delay_s / 3600, 1),
    }


def summarize(sim: Simulator) -> dict:
    sc, cfg = sim.scenario, sim.config
    sites = {sid: _site_summary(sim, view) for sid, view in sim.sites.items()}
    total = {
        key: round(sum(s[key] for s in sites.values()), 3)
        for key in next(iter(sites.values()))
        if key not in ("ladder_steps", "grid_events", "peak_meter_mw", "max_excess_w", "cap_violations", "cap_violation_s")
    }
    total["cap_violations"] = sum(s["cap_violations"] for s in sites.values())
    total["cap_violation_s"] = round(sum(s["cap_violation_s"] for s in sites.values()), 3)
    total["max_excess_w"] = max(s["max_excess_w"] for s in sites.values())
    return {
        "window": {"start": iso(sc.start), "end": iso(sc.end), "days": round((sc.end - sc.start) / 86400, 3), "tick_s": cfg.tick_s, "ticks": sim.tick_count},
        "inputs": {
            "prices": sc.prices.path,
            "forecast": sc.forecast.path if sc.forecast else None,
            "sites": [s.site_id for s in sc.sites],
            "grid_events": len(sc.events),
            "speed_curve": cfg.speed_source,
        },
        **total,
        **_jobs_summary(sim),
        "definitions": {
            "inference_slo_s": cfg.inference_slo_s,
            "training_deadline_factor": cfg.training_deadline_factor,
            "order_delay_s": cfg.order_delay_s,
            "reading_delay_s": cfg.tick_s if cfg.reading_delay_s is None else cfg.reading_delay_s,
            "lead_s": {sid: v.lead_s for sid, v in sim.sites.items()},
            "cap_violations": "site-ticks in which the meter exceeded the enforced cap at any moment",
            "training_slowdown_s": "extra run time of power-capped training, summed over jobs",
            "speed_curve": [list(point) for point in cfg.speed.points],
            "mining_policy": cfg.policy.policy,
            "program": dataclasses.asdict(cfg.program) if cfg.program else None,
            "program_events": f"{cfg.program_event_steps} intervals after a settled real-time price >= {cfg.program_event_price:g} USD/MWh",
            "cp4": f"{cfg.cp4_usd_per_kw_year:g} USD/kW-year on the mean mining load at the highest-priced interval of each of June-September",
        },
        "sites": sites,
    }


class TimeseriesWriter:
    """timeseries.csv written as the ticks complete: pass it as the Simulator's `rows`
    sink (rows come by time, then site); close it after the run (or use `with`)."""

    def __init__(self, path: Path):
        self.handle = Path(path).open("w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(TIMESERIES_COLUMNS)

    def __call__(self, r: Row) -> None:
        self.writer.writerow([iso(r.time), r.site, *(_fmt(v) for v in r[2:])])

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> TimeseriesWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_timeseries(sim: Simulator, path: Path) -> None:
    """timeseries.csv from the rows a Simulator kept (one run without a `rows` sink)."""
    with TimeseriesWriter(path) as write:
        for r in sorted((r for v in sim.sites.values() for r in v.rows), key=lambda r: (r.time, r.site)):
            write(r)


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def write_summary(summary: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(summary, indent=2) + "\n")


def format_summary(summary: dict) -> str:
    s = summary
    jobs = s["jobs"]
    lines = [
        f"simulated {s['window']['start']} .. {s['window']['end']} ({s['window']['days']:g} days, {s['window']['ticks']} ticks of {s['window']['tick_s']:g} s), "
        f"sites: {', '.join(s['inputs']['sites'])}",
        f"  mining revenue   {s['mining_revenue_usd']:>14,.0f} USD",
        f"  AI revenue       {s['ai_revenue_usd']:>14,.0f} USD   ({s['gpu_hours_of_work']:,.0f} GPU-h of work)",
        f"  power cost       {s['power_cost_usd']:>14,.0f} USD   ({s['energy_mwh']:,.0f} MWh at the meter)",
        f"  profit           {s['profit_usd']:>14,.0f} USD",
        f"  grid programs    {s['program_revenue_usd']:>14,.0f} USD   program revenue; 4CP savings {s['cp4_savings_usd']:,.0f} USD",
        f"  energy curtailed {s['energy_curtailed_mwh']:>14,.1f} MWh   (unused headroom {s['curtailed_unused_headroom_mwh']:,.1f}; "
        f"to AI and grid caps {s['curtailed_for_ai_and_caps_mwh']:,.1f})",
        f"  cap violations   {s['cap_violations']:>14}     ({s['cap_violation_s']:g} s over, largest excess {s['max_excess_w']:,.0f} W)",
        f"  preemptions      {s['preemptions']:>14}     (inference shed: {s['inference_shed']}; work lost to stops: {s['gpu_hours_lost']:,.0f} GPU-h)",
        f"  for priority     {s['priority_preemptions']:>14}     (training stopped for higher-priority jobs; training delay {s['training_delay_h']:,.0f} h in all)",
        f"  capped training  {s['training_slowdown_s'] / 3600:>14,.1f} h   longer in all ({s['training_slowed_jobs']} jobs slowed by GPU power caps)",
        f"  SLO misses       {s['slo_misses']['inference'] + s['slo_misses']['training']:>14}     "
        f"(inference {s['slo_misses']['inference']}: waited > {s['definitions']['inference_slo_s']:g} s; "
        f"training {s['slo_misses']['training']}: later than {s['definitions']['training_deadline_factor']:g}x its duration)",
        f"  jobs done        {jobs['done']:>14}     of {jobs['arrived']} arrived ({jobs['running']} running, {jobs['queued']} queued at the end)",
    ]
    for sid, site in s["sites"].items():
        steps = ", ".join(f"{k} {v}" for k, v in site["ladder_steps"].items()) or "none"
        lines.append(
            f"  {sid}: profit {site['profit_usd']:,.0f} USD, peak {site['peak_meter_mw']:.2f} MW, curtailed {site['energy_curtailed_mwh']:,.1f} MWh, "
            f"violations {site['cap_violations']}; ladder steps: {steps}"
        )
    return "\n".join(lines)
