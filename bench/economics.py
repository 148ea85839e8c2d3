"""Economics on the real ERCOT trace: when should a site's miners run?

A 100 MW Texas site (air cooled, overhead 1.10) with 20 MW of GPUs (IT) for AI,
always at load, and the rest of the cap in miners (S19 XP, S21, SEALMINER A2 in
equal shares of power). Hashprice 45 USD/PH/day (../shared/DOMAIN.md). Power is
bought at the ERCOT HB_SOUTH real-time price of each 15-minute interval (the trace in
the data folder of scheduler/sim/data.py: the whole of
../shared/data/ercot_hb_south_15min_2024-06_2025-03.csv, 28,800 intervals, where it is
there, else the two weeks shipped in the package; --trace FILE to choose).

Strategies, each deciding interval t with what it could know then:
 (a) always on: every miner hashes all the time;
 (b) threshold (today's practice): all miners pause while the last real-time price
     seen is above 87 USD/MWh (ERCOT large flexible loads' strike price);
 (c) Powerplane: scheduler.core.mining.plan_mining, merit order per model against
     the last real-time price x overhead, with hysteresis;
 (d) the offline optimum with perfect foresight of every interval's real-time
     price: a linear program solved by scipy's HiGHS under the same constraints
     (per-fleet power between paused and rated, IT load x overhead <= cap).
Profit is the part the strategies decide: mining revenue minus the power bill of
the miners (cooling included). AI's profit is the same in all four and printed once.

    .venv/bin/python bench/economics.py [--hashprice 45]

Ends with one JSON line: profit_always_on, profit_threshold, profit_powerplane,
profit_optimum, ratio_to_optimum, cap_violations.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.core.mining import FleetState, MiningPolicy, expected_price, plan_mining  # noqa: E402
from scheduler.core.power import MINER_MODELS, Cooling, Fleet, SitePower  # noqa: E402
from scheduler.sim import data as datasets  # noqa: E402

INTERVAL_H = 0.25
CAP_W = 100e6
AI_IT_W = 20e6
GPU_LOAD_W = 1200.0  # an H100 SXM (700 W) with its share of host and network
GPU_RENT_USD_PER_H = 2.35  # H100 rental, March 2026 (DOMAIN.md)
THRESHOLD_USD_PER_MWH = 87.0


def load_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r["dam_usd_per_mwh"]) for r in rows]), np.array([float(r["rtm_usd_per_mwh"]) for r in rows])


def texas_site() -> SitePower:
    overhead = Cooling.AIR.default_overhead
    mining_it_w = CAP_W / overhead - AI_IT_W
    fleets = []
    for key in ("S19XP", "S21", "A2"):
        model = MINER_MODELS[key]
        count = int((mining_it_w / 3) // model.rated_w)
        fleets.append(Fleet(f"tx-{key.lower()}", model, count))
    return SitePower("tx-1", cap_w=CAP_W, overhead=overhead, fleets=tuple(fleets), gpus=int(AI_IT_W // GPU_LOAD_W), gpu_load_w=GPU_LOAD_W)


def mining_profit(site: SitePower, fleet_w: np.ndarray, rtm: np.ndarray, hashprice: float) -> float:
    """fleet_w: (intervals, fleets) power in W. Revenue from hashrate minus power at the meter."""
    revenue = 0.0
    for j, fleet in enumerate(site.fleets):
        ths = _hashrate_vec(fleet, fleet_w[:, j])
        revenue += float(np.sum(hashprice * ths / 1000.0 / 24.0 * INTERVAL_H))
    cost = float(np.sum(fleet_w.sum(axis=1) / 1e6 * site.overhead * rtm * INTERVAL_H))
    return revenue - cost


def _hashrate_vec(fleet: Fleet, power_w: np.ndarray) -> np.ndarray:
    """Fleet.hashrate_ths over an array of powers."""
    hashing = np.clip(np.minimum(power_w, fleet.max_w) - fleet.standby_w, 0.0, None)
    return fleet.count * fleet.model.ths * hashing / (fleet.max_w - fleet.standby_w)


def cap_violations(site: SitePower, fleet_w: np.ndarray) -> int:
    committed = (fleet_w.sum(axis=1) + AI_IT_W) * site.overhead
    return int(np.sum(committed > site.cap_w + 1e-3))


def always_on(site: SitePower, n: int) -> np.ndarray:
    return np.tile([f.max_w for f in site.fleets], (n, 1)).astype(float)


def threshold(site: SitePower, dam: np.ndarray, rtm: np.ndarray) -> np.ndarray:
    last = np.concatenate([[dam[0]], rtm[:-1]])
    on = last <= THRESHOLD_USD_PER_MWH
    full = np.array([f.max_w for f in site.fleets])
    paused = np.array([f.standby_w for f in site.fleets])
    return np.where(on[:, None], full, paused)


def powerplane(site: SitePower, dam: np.ndarray, rtm: np.ndarray, hashprice: float, policy: MiningPolicy) -> np.ndarray:
    states: dict[str, FleetState] = {}
    out = np.zeros((len(rtm), len(site.fleets)))
    for t in range(len(rtm)):
        price = expected_price(dam[t], rtm[t - 1] if t else None)
        plan = plan_mining(site, AI_IT_W, price, hashprice, states, now=t * INTERVAL_H * 3600, policy=policy)
        states = plan.states
        out[t] = [plan.targets_w[f.fleet_id] for f in site.fleets]
    return out


def optimum(site: SitePower, rtm: np.ndarray, hashprice: float) -> np.ndarray:
    """LP over above-floor power x[t, f] in [0, max_f - standby_f], sum_f x[t, f] <= headroom."""
    n, k = len(rtm), len(site.fleets)
    headroom = site.mining_headroom_w(AI_IT_W)
    # Revenue per W of above-floor power per interval minus its cost at the meter.
    value = np.empty((n, k))
    for j, fleet in enumerate(site.fleets):
        ths_per_w = fleet.count * fleet.model.ths / (fleet.max_w - fleet.standby_w)
        value[:, j] = hashprice * ths_per_w / 1000.0 / 24.0 * INTERVAL_H - rtm / 1e6 * site.overhead * INTERVAL_H
    bounds = [(0.0, f.max_w - f.standby_w) for f in site.fleets] * n
    rows = np.repeat(np.arange(n), k)
    a_ub = sparse.csr_matrix((np.ones(n * k), (rows, np.arange(n * k))), shape=(n, n * k))
    result = linprog(-value.ravel(), A_ub=a_ub, b_ub=np.full(n, headroom), bounds=bounds, method="highs")
    if result.status != 0:
        raise SystemExit(f"LP failed: {result.message}")
    return result.x.reshape(n, k) + np.array([f.standby_w for f in site.fleets])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashprice", type=float, default=45.0, help="USD/PH/day")
    parser.add_argument("--trace", type=Path, default=None, help=f"ERCOT price CSV (default: {datasets.ERCOT} in the data folder)")
    args = parser.parse_args()
    try:
        trace = args.trace or datasets.find(datasets.data_dir(), datasets.ERCOT, file_flag="--trace")
    except datasets.MissingData as err:
        raise SystemExit(f"bench/economics.py: {err}") from None
    if datasets.is_sample(trace):
        print(f"note: the sample's two weeks of prices ({trace}), not the whole trace: {datasets.choose(default=False)}", file=sys.stderr)
    dam, rtm = load_trace(trace)
    site = texas_site()
    n = len(rtm)
    print(
        f"{n} intervals, {n * INTERVAL_H / 24:.0f} days; site cap {CAP_W / 1e6:.0f} MW, overhead {site.overhead}, AI {AI_IT_W / 1e6:.0f} MW IT ({site.gpus} GPUs)"
    )
    for fleet in site.fleets:
        print(
            f"  fleet {fleet.fleet_id}: {fleet.count} x {fleet.model.name}, {fleet.max_w / 1e6:.1f} MW, "
            f"{fleet.model.revenue_per_mwh(args.hashprice):.1f} USD/MWh revenue (pays below {fleet.model.revenue_per_mwh(args.hashprice) / site.overhead:.1f} USD/MWh)"
        )
    started = time.perf_counter()
    plans = {
        "always_on": always_on(site, n),
        "threshold": threshold(site, dam, rtm),
        "powerplane": powerplane(site, dam, rtm, args.hashprice, MiningPolicy(hysteresis_usd_per_mwh=2.0)),
    }
    policy_s = time.perf_counter() - started
    started = time.perf_counter()
    plans["optimum"] = optimum(site, rtm, args.hashprice)
    lp_s = time.perf_counter() - started
    profits = {name: mining_profit(site, plan, rtm, args.hashprice) for name, plan in plans.items()}
    violations = {name: cap_violations(site, plan) for name, plan in plans.items()}
    ai_profit = site.gpus * GPU_RENT_USD_PER_H * n * INTERVAL_H - float(np.sum(AI_IT_W / 1e6 * site.overhead * rtm * INTERVAL_H))
    for name, profit in profits.items():
        print(f"  {name:<11} mining profit {profit:>14,.0f} USD   {profit / profits['optimum']:.4f} of optimum   cap violations {violations[name]}")
    print(f"  AI profit (same in all): {ai_profit:,.0f} USD; policy replay {policy_s:.2f}s, LP {lp_s:.2f}s")
    ratio = profits["powerplane"] / profits["optimum"]
    beats = profits["powerplane"] > max(profits["always_on"], profits["threshold"])
    print(f"ratio (c)/(d) = {ratio:.4f}; Powerplane beats always-on and threshold: {beats}")
    print(
        json.dumps(
            {
                "profit_always_on": round(profits["always_on"]),
                "profit_threshold": round(profits["threshold"]),
                "profit_powerplane": round(profits["powerplane"]),
                "profit_optimum": round(profits["optimum"]),
                "ratio_to_optimum": round(ratio, 4),
                "cap_violations": sum(violations.values()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
