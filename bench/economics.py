"""Economics on the real ERCOT trace: when should a site's miners run?

The site: a 100 MW Texas interconnect (air cooled, overhead 1.10). AI draws 12 MW (IT)
of training around the clock plus up to 20 MW of inference whose shape is the real
Azure LLM inference trace's (../shared/data/azure_llm_inference_*_2023-11-16.csv):
tokens per minute (prompt + generated, conversation and code together; the partial
first and last minutes left out) over the trace's hour, each minute's rate scaled to
its highest and replayed as one 15-minute interval after the other (the hour holds 58
whole minutes, so the pattern repeats every 14.5 hours; a stretch of time, not a day's
shape). So AI varies between about 15 and 32 MW. 70 MW (IT) of miners (S19 XP, S21,
SEALMINER A2 in equal shares of power) fill the rest: all of them plus AI exceed the
cap whenever inference runs above about 40 % of its peak, so the cap binds about half
the time. Hashprice 45 USD/PH/day (../shared/DOMAIN.md). Power is bought at the ERCOT
HB_SOUTH real-time price of each 15-minute interval (the whole of
../shared/data/ercot_hb_south_15min_2024-06_2025-03.csv, 28,800 intervals, when it is
there; else the two weeks shipped in the package; --trace FILE to choose).

What links one interval to the next (scheduler/core/mining_outlook.py applies the same
rules to every causal strategy, and the LP holds them as constraints):
- resume rate: mining rises by at most 15 MW (IT) per interval over the site (1 MW/min);
  coming down is unlimited (the cap and the grid come first);
- ramp energy: power switched on draws 5 minutes without hashing while the miners
  warm up (its hashing revenue is lost);
- minimum on and off times of 30 minutes (2 intervals) per miner, in the clustered
  unit-commitment form (a fleet is thousands of identical miners, treated as a
  continuum: the LP relaxation of per-miner binaries, exact up to whole miners). Minimum
  on time gives way to the cap by at most the headroom the cap took back within the
  window (the cap always wins);
- a demand-response program (an ERS-like commitment; the figures are an example of a
  program config, not a tariff): 10 MW at the meter, 8 USD/MW-h paid for each
  interval's available curtailable mining load (up to 10 MW), 100 USD/MWh for what an
  event curtails below the level before it. The trace holds no deployment record:
  an event runs for the hour after a settled real-time price of 1,000 USD/MWh or more
  (scarcity pricing, a proxy for ERCOT's deployments), so it is known when it starts;
  during an event only the curtailment delivered counts as available;
- 4CP: transmission charges of the next year follow the site's load in ERCOT's four
  monthly 15-minute system peaks of June-September. The trace has no system load, so
  the proxy is the interval of highest real-time price in each summer month.
  Program payments and 4CP savings are counted by scheduler/core/grid_money.py, as the
  simulator counts them. Saving =
  60 USD/kW-year (an assumed tariff: TDSPs' 4CP rates are a few USD/kW-month) x the
  drop of the mean meter load at those intervals below always-on's, pro rata for the
  trace's length. The optimum knows the four intervals; the policies do not.

Strategies (causal ones decide interval t with the settled prices up to t - 1 and the
day-ahead prices, which are published the day before):
 (a) always on: every miner the cap allows, all the time;
 (b) break-even: a fleet pauses while the last real-time price x overhead is above its
     revenue per MWh, no hysteresis (per fleet);
 (c) best strike: all fleets pause while the last real-time price is above one strike
     price, the best over 60-300 USD/MWh in steps of 5 (chosen with hindsight);
 (d) Powerplane: scheduler.core.mining_outlook.plan_outlook (the last real-time price
     moved by the day-ahead market's expected change; stops only when the expected
     loss over the spike beats the cost of coming back; keeps the program's commitment
     while the capacity payment beats the loss; curtails summer peak candidates: from an
     hour before to 1.5 h after the day-ahead market's dearest interval of the day, once
     a real-time price of the last hour reached 70 USD/MWh);
 (e) the offline optimum with perfect foresight: a linear program solved by scipy's
     HiGHS with all the constraints above and the program and 4CP terms.
Profit is what the strategies decide: mining revenue minus the miners' power bill
(cooling included) minus hashing lost to warm-up, plus program payments, plus 4CP
savings. AI's profit is the same in all and printed once. gap_closed is
(d - a) / (e - a).

    .venv/bin/python bench/economics.py [--hashprice 45] [--trace FILE]

Last figures (whole trace, hashprice 45): always-on 35,434,054 USD, break-even
38,961,800, best strike (95 USD/MWh) 39,442,670, Powerplane 39,561,321, optimum
39,955,403: ratio 0.9901, gap_closed 0.913; Powerplane's program revenue 566,869 and
4CP savings 3,386,219 (all four peaks avoided); 0 cap and 0 rule violations. The peak
window follows the day-ahead market (published the day before; in this summer its
dearest hour was 19:00-20:00 on most days and the real-time peaks fell within an hour
of it). Its width is a setting: 1.5 h either side closes 0.911, 2 h either side 0.890;
a fixed 18:30-20:30 window read off this same summer closed 0.922, a fixed 16:00-21:00
0.895. At hashprice 35 gap_closed is 0.939, at 55 it is 0.882 (there a strike of 90
would do better: the strike does not scale with the hashprice).

Ends with one JSON line: profit_always_on, profit_breakeven, profit_best_strike,
best_strike_usd_per_mwh, profit_powerplane, profit_optimum, ratio_to_optimum,
gap_closed, program_revenue, cp4_savings, cap_violations, rule_violations.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from economics_lp import Problem, lp_optimum  # noqa: E402  (bench/, beside this file)

from scheduler.core.grid_money import cp4_usd_per_mw, grid_money, peak_intervals, program_events  # noqa: E402
from scheduler.core.mining_outlook import FleetHistory, MiningLimits, Outlook, OutlookPolicy, Program, limit_targets, plan_outlook, step_history  # noqa: E402
from scheduler.core.power import MINER_MODELS, Cooling, Fleet, SitePower  # noqa: E402
from scheduler.sim import data as datasets  # noqa: E402

INTERVAL_H = 0.25
CAP_W = 100e6
TRAINING_IT_W = 12e6
INFERENCE_PEAK_IT_W = 20e6
MINING_IT_W = 70e6
GPU_LOAD_W = 1200.0  # an H100 SXM (700 W) with its share of host and network
GPU_RENT_USD_PER_H = 2.35  # H100 rental, March 2026 (DOMAIN.md)
LIMITS = MiningLimits(resume_w_per_step=15e6, min_on_steps=2, min_off_steps=2)
WARMUP_H = 5.0 / 60.0
PROGRAM = Program("ers-like", committed_w=10e6, capacity_usd_per_mw_h=8.0, energy_usd_per_mwh=100.0)
EVENT_PRICE = 1000.0
EVENT_STEPS = 4
CP4_USD_PER_KW_YEAR = 60.0
STRIKES = np.arange(60.0, 301.0, 5.0)


def load_trace(path: Path) -> tuple[np.ndarray, np.ndarray, list[datetime]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    times = [datetime.fromisoformat(r["interval_start"]) for r in rows]
    return np.array([float(r["dam_usd_per_mwh"]) for r in rows]), np.array([float(r["rtm_usd_per_mwh"]) for r in rows]), times


def inference_shape(paths: list[Path]) -> np.ndarray:
    """Tokens per whole minute of the Azure traces together, scaled to the highest minute."""
    per_minute: dict[str, float] = {}
    for path in paths:
        with open(path) as f:
            for r in csv.DictReader(f):
                minute = r["TIMESTAMP"][:16]
                per_minute[minute] = per_minute.get(minute, 0.0) + float(r["ContextTokens"]) + float(r["GeneratedTokens"])
    rates = np.array([per_minute[m] for m in sorted(per_minute)][1:-1])  # the first and last minutes are partial
    return rates / rates.max()


def texas_site() -> SitePower:
    overhead = Cooling.AIR.default_overhead
    fleets = []
    for key in ("A2", "S21", "S19XP"):  # merit order: most efficient first
        model = MINER_MODELS[key]
        fleets.append(Fleet(f"tx-{key.lower()}", model, int((MINING_IT_W / 3) // model.rated_w)))
    gpus = int((TRAINING_IT_W + INFERENCE_PEAK_IT_W) // GPU_LOAD_W)
    return SitePower("tx-1", cap_w=CAP_W, overhead=overhead, fleets=tuple(fleets), gpus=gpus, gpu_load_w=GPU_LOAD_W)


def events_from(rtm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(in event, the interval before the event's start) per interval (grid_money.program_events)."""
    base = np.array(program_events(rtm.tolist(), EVENT_PRICE, EVENT_STEPS), dtype=int)
    return base >= 0, base


def day_ahead_peak_hours(dam: np.ndarray, times: list[datetime]) -> list[float]:
    """Per interval: the hour of the day-ahead market's dearest interval of its day (the
    first if tied), published the day before (mining_outlook.Outlook.day_ahead_peak_hour)."""
    dearest: dict[object, tuple[float, float]] = {}
    for price, moment in zip(dam.tolist(), times):
        day, hour = moment.date(), moment.hour + moment.minute / 60.0
        if day not in dearest or price > dearest[day][0]:
            dearest[day] = (price, hour)
    return [dearest[moment.date()][1] for moment in times]


class Bench:
    def __init__(self, site: SitePower, dam: np.ndarray, rtm: np.ndarray, times: list[datetime], ai_it_w: np.ndarray, hashprice: float):
        self.site, self.dam, self.rtm, self.times, self.ai = site, dam, rtm, times, ai_it_w
        self.n, self.k = len(rtm), len(site.fleets)
        self.rated = np.array([f.max_w - f.standby_w for f in site.fleets])
        self.floor = sum(f.standby_w for f in site.fleets)
        self.revenue = np.array([f.model.revenue_per_mwh(hashprice) for f in site.fleets])  # USD per MWh above floor (hashing linear in it)
        self.headroom = np.maximum(0.0, site.it_budget_w() - ai_it_w - self.floor)
        self.event, self.event_base = events_from(rtm)
        self.event_base_list = self.event_base.tolist()
        self.peaks = peak_intervals(rtm.tolist(), [t.month for t in times])
        self.days = self.n * INTERVAL_H / 24.0
        self.peak_season = np.array([t.month in (6, 7, 8, 9) for t in times])
        self.reference: np.ndarray | None = None  # always-on's levels, for 4CP savings
        self.day_ahead_peak_hour = day_ahead_peak_hours(dam, times)

    def problem(self) -> Problem:
        return Problem(
            self.rtm,
            self.headroom,
            self.rated,
            self.revenue,
            self.site.overhead,
            INTERVAL_H,
            LIMITS,
            WARMUP_H,
            PROGRAM,
            self.event,
            self.event_base,
            self.peaks,
            self.cp4_usd_per_mw(),
            self.reference_peak_mw(),
        )

    def cp4_usd_per_mw(self) -> float:
        """USD saved per MW (meter) less load averaged over the four peaks, for the trace's length."""
        return cp4_usd_per_mw(CP4_USD_PER_KW_YEAR, self.days)

    def reference_peak_mw(self) -> float:
        assert self.reference is not None
        return float(np.mean(self.reference[self.peaks].sum(axis=1))) * self.site.overhead / 1e6

    # ----------------------------------------------------------------- replay
    def replay(self, want: Callable[[int, list[FleetHistory]], list[float]], obey_events: bool = True) -> np.ndarray:
        """Levels above floor (intervals, fleets) a causal strategy reaches under the rules;
        during an event every strategy curtails the commitment below the level before it."""
        history = [FleetHistory() for _ in range(self.k)]
        out = np.zeros((self.n, self.k))
        committed_it = PROGRAM.committed_w / self.site.overhead
        for t in range(self.n):
            wanted = want(t, history)
            if obey_events and self.event[t]:
                room = max(0.0, out[self.event_base[t]].sum() - committed_it)
                wanted = list(np.minimum(wanted, np.maximum(0.0, room - (np.cumsum(wanted) - wanted))))
            levels = limit_targets(wanted, self.rated, history, float(self.headroom[t]), LIMITS)
            history = [step_history(h, w, LIMITS) for h, w in zip(history, levels)]
            out[t] = levels
        return out

    def last_price(self, t: int) -> float:
        return float(self.rtm[t - 1]) if t else float(self.dam[0])

    def always_on(self) -> np.ndarray:
        return self.replay(lambda t, h: list(self.rated))

    def breakeven(self) -> np.ndarray:
        return self.replay(lambda t, h: list(np.where(self.last_price(t) * self.site.overhead <= self.revenue, self.rated, 0.0)))

    def strike(self, strike: float) -> np.ndarray:
        return self.replay(lambda t, h: list(self.rated) if self.last_price(t) <= strike else [0.0] * self.k)

    def powerplane(self, policy: OutlookPolicy) -> np.ndarray:
        def want(t: int, history: list[FleetHistory]) -> list[float]:
            base = self.event_base[t]
            outlook = Outlook(
                self.last_price(t),
                self.dam[max(0, t - 1) : t + policy.spike_horizon_steps + 1] if t else self.dam[: policy.spike_horizon_steps + 1],
                recent_real_time=self.rtm[max(0, t - 4) : t],
                hour=self.times[t].hour + self.times[t].minute / 60.0,
                peak_season=bool(self.peak_season[t]),
                event=bool(self.event[t]),
                event_base_w=float(levels[base].sum()) if base >= 0 else 0.0,
                day_ahead_peak_hour=self.day_ahead_peak_hour[t],
            )
            return plan_outlook(self.revenue, self.rated, history, float(self.headroom[t]), self.site.overhead, outlook, policy, PROGRAM)

        levels = np.zeros((self.n, self.k))

        def record(t: int, history: list[FleetHistory]) -> list[float]:
            if t:
                levels[t - 1] = [h.level_w for h in history]
            return want(t, history)

        return self.replay(record)

    # ----------------------------------------------------------------- money
    def money(self, x: np.ndarray) -> dict[str, float]:
        """The parts of the profit a plan of levels above floor earns."""
        oh = self.site.overhead
        hashing = float(np.sum(x * self.revenue) / 1e6 * INTERVAL_H)
        power = float(np.sum((x.sum(axis=1) + self.floor) / 1e6 * oh * self.rtm * INTERVAL_H))
        starts = np.maximum(0.0, np.diff(np.vstack([np.zeros(self.k), x]), axis=0))
        warmup = float(np.sum(starts * self.revenue) / 1e6 * WARMUP_H)
        meter_mw = (x.sum(axis=1) * oh / 1e6).tolist()
        grid = grid_money(meter_mw, INTERVAL_H, PROGRAM, self.event_base_list, self.peaks, self.reference_peak_mw(), self.cp4_usd_per_mw())
        return {"mining": hashing - power - warmup, "program": grid.program_usd, "cp4": grid.cp4_usd, "total": hashing - power - warmup + grid.total_usd}

    def cap_violations(self, x: np.ndarray) -> int:
        committed = (x.sum(axis=1) + self.floor + self.ai) * self.site.overhead
        return int(np.sum(committed > self.site.cap_w + 1e-3))

    def rule_violations(self, x: np.ndarray, tol_w: float = 1.0) -> int:
        """Intervals that break the resume rate or the minimum on/off times."""
        prev = np.vstack([np.zeros(self.k), x[:-1]])
        starts, stops = np.maximum(0.0, x - prev), np.maximum(0.0, prev - x)
        bad = starts.sum(axis=1) > LIMITS.resume_w_per_step + tol_w
        for t in range(self.n):
            on = starts[max(0, t - LIMITS.min_on_steps + 1) : t + 1].sum(axis=0)
            off = stops[max(0, t - LIMITS.min_off_steps + 1) : t + 1].sum(axis=0)
            given_back = max(0.0, self.headroom[max(0, t - LIMITS.min_on_steps + 1) : t + 1].max() - self.headroom[t])
            bad[t] |= bool(np.sum(np.maximum(0.0, on - x[t])) > given_back + tol_w or np.any(x[t] + off > self.rated + tol_w))
        return int(np.sum(bad))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashprice", type=float, default=45.0, help="USD/PH/day")
    parser.add_argument("--trace", type=Path, default=None, help=f"ERCOT price CSV (default: {datasets.ERCOT} in the data folder)")
    args = parser.parse_args()
    try:
        trace = args.trace or datasets.find(datasets.data_dir(), datasets.ERCOT, file_flag="--trace")
        azure = datasets.find_all(datasets.data_dir(), datasets.AZURE)
    except datasets.MissingData as err:
        raise SystemExit(f"bench/economics.py: {err}") from None
    if datasets.is_sample(trace):
        print(f"note: the sample's two weeks of prices ({trace}), not the whole trace: {datasets.choose(default=False)}", file=sys.stderr)
    dam, rtm, times = load_trace(trace)
    shape = inference_shape(list(azure))
    n = len(rtm)
    ai = TRAINING_IT_W + INFERENCE_PEAK_IT_W * shape[np.arange(n) % len(shape)]
    site = texas_site()
    bench = Bench(site, dam, rtm, times, ai, args.hashprice)
    print(
        f"{n} intervals, {bench.days:.0f} days; site cap {CAP_W / 1e6:.0f} MW, overhead {site.overhead}; AI {ai.min() / 1e6:.1f}-{ai.max() / 1e6:.1f} MW IT "
        f"(mean {ai.mean() / 1e6:.1f}); the cap binds always-on mining in {np.mean(bench.headroom < bench.rated.sum()):.0%} of intervals; "
        f"{int(bench.event.sum())} event intervals; 4CP proxy intervals {[times[i].isoformat(timespec='minutes') for i in bench.peaks]}"
    )
    for fleet, revenue in zip(site.fleets, bench.revenue):
        print(
            f"  fleet {fleet.fleet_id}: {fleet.count} x {fleet.model.name}, {fleet.max_w / 1e6:.1f} MW, {revenue:.1f} USD/MWh (pays below {revenue / site.overhead:.1f})"
        )
    started = time.perf_counter()
    plans = {"always_on": bench.always_on()}
    bench.reference = plans["always_on"]
    plans["breakeven"] = bench.breakeven()
    strikes = {float(s): bench.money(bench.strike(float(s)))["total"] for s in STRIKES}
    best = max(strikes, key=lambda s: strikes[s])
    plans["best_strike"] = bench.strike(best)
    plans["powerplane"] = bench.powerplane(OutlookPolicy(limits=LIMITS, warmup_h=WARMUP_H))
    policy_s = time.perf_counter() - started
    started = time.perf_counter()
    plans["optimum"] = lp_optimum(bench.problem())
    lp_s = time.perf_counter() - started
    money = {name: bench.money(plan) for name, plan in plans.items()}
    caps = {name: bench.cap_violations(plan) for name, plan in plans.items()}
    rules = {name: bench.rule_violations(plan) for name, plan in plans.items()}
    ai_profit = site.gpus * GPU_RENT_USD_PER_H * n * INTERVAL_H - float(np.sum(ai / 1e6 * site.overhead * rtm * INTERVAL_H))
    opt = money["optimum"]["total"]
    for name, m in money.items():
        print(
            f"  {name:<11} {m['total']:>14,.0f} USD (mining {m['mining']:>13,.0f}, program {m['program']:>9,.0f}, 4CP {m['cp4']:>10,.0f})   "
            f"{m['total'] / opt:.4f} of optimum   cap violations {caps[name]}, rule violations {rules[name]}"
        )
    print(f"  best strike {best:.0f} USD/MWh; AI profit (same in all): {ai_profit:,.0f} USD; policy replays {policy_s:.1f}s, LP {lp_s:.1f}s")
    ratio = money["powerplane"]["total"] / opt
    gap = (money["powerplane"]["total"] - money["always_on"]["total"]) / (opt - money["always_on"]["total"])
    print(
        json.dumps(
            {
                "profit_always_on": round(money["always_on"]["total"]),
                "profit_breakeven": round(money["breakeven"]["total"]),
                "profit_best_strike": round(money["best_strike"]["total"]),
                "best_strike_usd_per_mwh": best,
                "profit_powerplane": round(money["powerplane"]["total"]),
                "profit_optimum": round(opt),
                "ratio_to_optimum": round(ratio, 4),
                "gap_closed": round(gap, 4),
                "program_revenue": round(money["powerplane"]["program"]),
                "cp4_savings": round(money["powerplane"]["cp4"]),
                "cap_violations": sum(caps.values()),
                "rule_violations": sum(rules.values()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
