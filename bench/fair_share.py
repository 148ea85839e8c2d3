"""Contracts and fair share over a simulated week: four tenants, two regions, cap cuts.

The simulator (scheduler/sim/) runs the scheduler's own pass (core/priority.py's
schedule_pass with a TenancyPolicy: fair-share queue, contract reclaim, then priority) on
three mining sites: us-a (1,024 GPUs, hydro), us-b (512, air) in region us, eu-a (512, air)
in region eu, with the two-week ERCOT sample's prices (scheduler/sim/data.py), a cap cut
at us-a on day 2 (15:00-19:00) and at eu-a on day 4 (14:00-16:00) that force training off,
and a grid emergency at us-b on day 5 (17:00-19:00). One tick a minute.

Tenants (seeded Poisson arrivals over the week; training gangs of 8-256 GPUs for 1-12 h
at priority 0/1, checkpointing as services.py assumes; inference of 16-64 GPUs for 6-72 h
at priority 10), demand about 1.2x the GPUs on average (gamma in bursts):

    tenant  weight  contracts (firm GPUs, class)            workload
    acme    2       us: 640 (+512 burst), firm              heavy training + inference, us
    beta    1       us: 256, eu: 128, firm                  training + inference, half us half eu
    gamma   1       eu: 256, firm                           bursty training, eu
    labs    1       us: 128, interruptible                  opportunistic training, us and eu

Two runs of the same arrivals, side by side: `contracts` (the TenancyPolicy above,
reclaim_grace_s 600) and `baseline` (no contracts: priority, then first come first served).

Figures, each over the ticks where demand exceeds supply in a region (the GPUs the tenants'
running and waiting jobs there need, each tenant's up to its firm share + burst, exceed
its GPUs):
- entitlement: per region and tick, each tenant's firm share (up to its demand) and then
  the rest of the region's GPUs by weighted max-min over what it still asks for
  (e_i = clamp(w_i x level, min(demand_i, firm_i), demand_i), summing to the GPUs);
  received: the GPUs its RUNNING runs there hold. Per tenant x_i = received / entitlement
  (GPU-seconds over the contended ticks); jain_index = (sum x)^2 / (n sum x^2) (goal >= 0.95).
- firm_violations: waiting jobs within their tenant's firm share (on top of all it runs there: Book,
  the same contracts for both runs) left waiting past reclaim_grace_s + a tick while other
  tenants' borrowed training in that region held at least the GPUs they need (goal 0).
- gpu_utilization: GPUs held by RUNNING runs / GPUs in all (goal >= 0.95).
- preemptions (by cause: power, priority, contract), work_lost_s (full-power seconds of
  training redone after stops), slo_misses (inference not started within 300 s of arriving
  or of a stop; training finished later than 2x its duration after arriving).

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/fair_share.py'

Seeds 1, 2, 3 (contracts | baseline): jain_index 0.990 0.981 0.989 | 0.987 0.919 0.965;
firm_violations 0 0 0 | 197 222 236; preemptions 87 76 89 | 309 353 322; gpu_utilization
0.943 0.953 0.935 | 0.952 0.966 0.958 (what reclaim costs: the claim's room idles while the
borrowed runs checkpoint, and requeued runs come back whole where smaller holes are);
work_lost_s 4980 8160 7380 | 3720 5520 3180; inference SLO misses 0 2 1 | 0 0 0; training
deadline misses 292 377 307 | 410 499 421.

Options: --days (7), --seed (1), --tick-s (60). The two runs go in two processes (about
20 s each on one core). Prints ONE JSON line: {"bench": "fair_share", "contracts": {...},
"baseline": {...}}, each with tenants, jain_index, firm_violations, preemptions,
work_lost_s, gpu_utilization, slo_misses.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.core.contracts import Book, Contract, TenancyPolicy, contract_figures  # noqa: E402
from scheduler.core.grid import GridEvent, GridEventKind  # noqa: E402
from scheduler.core.jobs import JobKind, JobState  # noqa: E402
from scheduler.core.placement import SiteCapacity  # noqa: E402
from scheduler.core.power import MINER_MODELS, Fleet, SitePower  # noqa: E402
from scheduler.sim import data as datasets  # noqa: E402
from scheduler.sim.engine import Scenario, SimConfig, Simulator  # noqa: E402
from scheduler.sim.scenario import Arrival, ScenarioSite  # noqa: E402
from scheduler.sim.traces import Hashprice, load_prices_and_forecast  # noqa: E402

TENANCY = TenancyPolicy(
    contracts=(
        Contract("acme", "us", 640, burst_gpus=512),
        Contract("beta", "us", 256),
        Contract("beta", "eu", 128),
        Contract("gamma", "eu", 256),
        Contract("labs", "us", 128, service_class="interruptible"),
    ),
    weights=(("acme", 2.0),),
    reclaim_grace_s=600.0,
)
# tenant -> (training share of all GPUs, inference share, regions its jobs go to, burstiness)
WORKLOAD = {
    "acme": (0.40, 0.10, ("us",), 1.0),
    "beta": (0.20, 0.06, ("us", "eu"), 1.0),
    "gamma": (0.14, 0.0, ("eu",), 3.0),
    "labs": (0.30, 0.0, ("us", "eu"), 1.0),
}
GANGS = ((8, 0.15), (16, 0.15), (32, 0.2), (64, 0.2), (128, 0.2), (256, 0.1))
HOURS = ((1, 0.25), (2, 0.25), (4, 0.25), (8, 0.15), (12, 0.10))
INFERENCE_GPUS = ((16, 0.4), (32, 0.4), (64, 0.2))
INFERENCE_HOURS = ((6, 0.3), (24, 0.4), (72, 0.3))


def _pick(rng: random.Random, table) -> float:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _site(site_id: str, gpus: int, cap_mw: float, overhead: float, miners: int) -> SitePower:
    fleets = (Fleet(f"{site_id}/s21", MINER_MODELS["S21"], miners), Fleet(f"{site_id}/s19", MINER_MODELS["S19XP"], miners))
    return SitePower(site_id, cap_mw * 1e6, overhead, fleets, gpus)


def sites() -> tuple[ScenarioSite, ...]:
    return (
        ScenarioSite(_site("us-a", 1024, 12.0, 1.04, 1500), "us", "HB_SOUTH"),
        ScenarioSite(_site("us-b", 512, 6.0, 1.1, 700), "us", "HB_SOUTH"),
        ScenarioSite(_site("eu-a", 512, 6.0, 1.1, 700), "eu", "HB_SOUTH"),
    )


def events(start: float) -> tuple[GridEvent, ...]:
    day = 86400.0
    # Cuts below what the sites' GPUs draw at load with mining at its floor: training must give way.
    return (
        GridEvent("cut-us-a", GridEventKind.CAP_LIMIT, start + 2 * day + 15 * 3600, start + 2 * day + 19 * 3600, site_id="us-a", cap_w=0.7e6 + 600 * 1200 * 1.04),
        GridEvent("cut-eu-a", GridEventKind.CAP_LIMIT, start + 4 * day + 14 * 3600, start + 4 * day + 16 * 3600, site_id="eu-a", cap_w=0.4e6 + 300 * 1200 * 1.1),
        GridEvent("eea-us-b", GridEventKind.EMERGENCY, start + 5 * day + 17 * 3600, start + 5 * day + 19 * 3600, site_id="us-b"),
    )


def arrivals(duration_s: float, seed: int, total_gpus: int) -> tuple[Arrival, ...]:
    found: list[Arrival] = []
    gang = sum(g * p for g, p in GANGS)
    hours = sum(h * p for h, p in HOURS)
    for n, (tenant, (train, infer, regions, burst)) in enumerate(sorted(WORKLOAD.items())):
        rng = random.Random(seed * 100 + n)
        rate = train * total_gpus / (gang * hours * 3600.0)
        t, k = 0.0, 0
        while True:
            t += rng.expovariate(rate * burst)
            if t >= duration_s:
                break
            if burst > 1.0 and (t // 86400.0) % burst:  # bursty: all of a stretch's work comes on one day in `burst`
                continue
            k += 1
            found.append(
                Arrival(t, JobKind.TRAINING, int(_pick(rng, GANGS)), _pick(rng, HOURS) * 3600.0, int(rng.random() < 0.3), 25.0,
                        (regions[k % len(regions)],), 1.7, f"{tenant}-t{k:04d}", tenant=tenant)
            )
        rng = random.Random(seed * 100 + n + 50)  # inference on its own stream: a longer run keeps the same first days
        if infer > 0:
            gpus, life = sum(g * p for g, p in INFERENCE_GPUS), sum(h * p for h, p in INFERENCE_HOURS) * 3600.0
            count = infer * total_gpus / gpus
            t, k = 0.0, 0
            for _ in range(int(round(count))):  # in steady state from the start
                k += 1
                found.append(Arrival(0.0, JobKind.INFERENCE, int(_pick(rng, INFERENCE_GPUS)), rng.random() * _pick(rng, INFERENCE_HOURS) * 3600.0 + 600.0,
                                     10, 0.0, (regions[k % len(regions)],), 2.35, f"{tenant}-i{k:04d}", tenant=tenant))
            while True:
                t += rng.expovariate(count / life)
                if t >= duration_s:
                    break
                k += 1
                found.append(Arrival(t, JobKind.INFERENCE, int(_pick(rng, INFERENCE_GPUS)), _pick(rng, INFERENCE_HOURS) * 3600.0,
                                     10, 0.0, (regions[k % len(regions)],), 2.35, f"{tenant}-i{k:04d}", tenant=tenant))
    return tuple(sorted(found, key=lambda a: (a.time_s, a.job_id)))


def entitlements(capacity: float, demand: dict[str, float], firm: dict[str, float], weight: dict[str, float]) -> dict[str, float]:
    """Weighted max-min over what each asks for, above its firm share (up to its demand):
    e_i = clamp(w_i x level, min(demand_i, firm_i), demand_i), the level where they sum to `capacity`."""
    floor = {t: min(d, firm.get(t, 0.0)) for t, d in demand.items()}
    # The sum is piecewise linear in the level, bending where w_i x level meets a floor or a demand.
    bends = sorted({v / weight[t] for t in demand for v in (floor[t], demand[t])})

    def total(level: float) -> float:
        return sum(min(d, max(floor[t], weight[t] * level)) for t, d in demand.items())

    low = 0.0
    for high in bends:
        if total(high) >= capacity:
            break
        low = high
    else:
        return dict(demand)
    lo_sum, hi_sum = total(low), total(high)
    level = low + (high - low) * (capacity - lo_sum) / (hi_sum - lo_sum) if hi_sum > lo_sum else high
    return {t: min(d, max(floor[t], weight[t] * level)) for t, d in demand.items()}


class Measured(Simulator):
    """The simulator, measured after each tick's decisions (which hold for the tick)."""

    def __init__(self, sc: Scenario, config: SimConfig):
        super().__init__(sc, config, rows=lambda row: None)
        self.region_gpus: dict[str, int] = {}
        self.site_region = {s.site_id: s.region for s in sc.sites}
        for s in sc.sites:
            self.region_gpus[s.region] = self.region_gpus.get(s.region, 0) + s.power.gpus
        self.tenants = sorted(WORKLOAD)
        self.received = dict.fromkeys(self.tenants, 0.0)
        self.entitled = dict.fromkeys(self.tenants, 0.0)
        self.busy = self.capacity = 0.0
        self.violated: set[str] = set()
        self.claims: dict[str, float] = {}  # firm claims other tenants' borrowed training could meet -> since when
        self.capacities = [SiteCapacity(s.site_id, s.region, s.power.gpus, 0, **contract_figures(s.power)) for s in sc.sites]
        self.causes = {"power": 0, "priority": 0, "contract": 0}
        self.by_tenant = {t: {"preemptions": 0, "reclaimed": 0, "work_lost_s": 0.0} for t in self.tenants}
        self.lost_s = 0.0
        self.slo = {"inference": 0, "training": 0}
        self._counted: set[str] = set()
        inner = self.scheduler.on_event

        def on_event(job, event):
            if event.to_state == JobState.PREEMPTED:
                cause = "contract" if event.reason.startswith("reclaimed by") else "priority" if job.preempted_for else "power"
                self.causes[cause] += 1
                self.by_tenant[job.tenant]["preemptions"] += 1
                self.by_tenant[job.tenant]["reclaimed"] += cause == "contract"
            if event.to_state == JobState.SUCCEEDED and job.job_id in self.jobs:
                self._fold(self.jobs[job.job_id], event.at)
            inner(job, event)

        self.scheduler.on_event = on_event

    def _fold(self, sj, now: float) -> None:
        if sj.job.job_id in self._counted:
            return
        self._counted.add(sj.job.job_id)
        self.lost_s += sj.lost_s
        self.by_tenant[sj.job.tenant]["work_lost_s"] += sj.lost_s
        if sj.arrival.kind == JobKind.INFERENCE:
            self.slo["inference"] += sj.slo_missed or (sj.job.state == JobState.PENDING and now - sj.waiting_since > self.config.inference_slo_s)
        else:
            finished = sj.finished_at if sj.finished_at is not None else now
            self.slo["training"] += finished > sj.arrived_at + self.config.training_deadline_factor * sj.arrival.duration_s

    def step(self, t: float, t_next: float) -> None:
        super().step(t, t_next)
        self._measure(t, t_next - t)

    def _measure(self, t: float, dt: float) -> None:
        jobs = self.scheduler.jobs
        demand: dict[str, dict[str, float]] = {r: dict.fromkeys(self.tenants, 0.0) for r in self.region_gpus}
        held: dict[str, dict[str, float]] = {r: dict.fromkeys(self.tenants, 0.0) for r in self.region_gpus}
        for job in jobs.active():
            region = self.site_region[job.site_id]
            demand[region][job.tenant] += job.total_gpus
            if job.state == JobState.RUNNING:
                held[region][job.tenant] += job.total_gpus
        pending = jobs.pending()
        for job in pending:
            region = job.spec.allowed_regions[0]
            demand[region][job.tenant] += job.spec.total_gpus
        weights = {tn: TENANCY.weight(tn) for tn in self.tenants}
        for region, gpus in self.region_gpus.items():
            contracts = {tn: TENANCY.contract(tn, region) for tn in self.tenants}
            firm = {tn: c.firm_gpus if c else 0.0 for tn, c in contracts.items()}
            for tn, c in contracts.items():  # what a tenant asks for beyond its firm share and burst is not owed
                if c is not None and c.burst_gpus is not None:
                    demand[region][tn] = min(demand[region][tn], c.firm_gpus + c.burst_gpus)
            if sum(demand[region].values()) <= gpus:
                continue
            share = entitlements(gpus, demand[region], firm, weights)
            for tn in self.tenants:
                self.entitled[tn] += share[tn] * dt
                self.received[tn] += held[region][tn] * dt
            self.busy += sum(held[region].values()) * dt
            self.capacity += gpus * dt
        # Firm claims left waiting past the grace while other tenants' borrowed training held their GPUs.
        active = jobs.active()
        book = Book(TENANCY, self.capacities, active)
        lent: dict[str, int] = {}  # region -> GPUs of borrowed training, by tenant below
        by_tenant: dict[tuple[str, str], int] = {}
        for run in active:
            if run.job_id in book.borrowed and run.spec.kind == JobKind.TRAINING and run.state == JobState.RUNNING:
                key = (self.site_region[run.site_id], run.tenant)
                by_tenant[key] = by_tenant.get(key, 0) + run.total_gpus
                lent[key[0]] = lent.get(key[0], 0) + run.total_gpus
        claims = set()
        for job in pending:
            for region in book.firm_regions(job, strict=True):
                if lent.get(region, 0) - by_tenant.get((region, job.tenant), 0) >= job.spec.total_gpus:
                    claims.add(job.job_id)
        self.claims = {j: self.claims.get(j, t) for j in claims}
        for job_id, since in self.claims.items():
            if t - since > TENANCY.reclaim_grace_s + 2 * self.config.tick_s:
                self.violated.add(job_id)

    def figures(self) -> dict:
        end = self.scenario.end
        for sj in list(self.jobs.values()):
            self._fold(sj, end)
        ratios = {tn: self.received[tn] / self.entitled[tn] if self.entitled[tn] else 1.0 for tn in self.tenants}
        jain = sum(ratios.values()) ** 2 / (len(ratios) * sum(x * x for x in ratios.values()))
        tenants = {
            tn: {
                "weight": TENANCY.weight(tn),
                "received_gpu_h": round(self.received[tn] / 3600.0),
                "entitled_gpu_h": round(self.entitled[tn] / 3600.0),
                "received_over_entitled": round(ratios[tn], 3),
                **{k: round(v, 1) if isinstance(v, float) else v for k, v in self.by_tenant[tn].items()},
            }
            for tn in self.tenants
        }
        return {
            "tenants": tenants,
            "jain_index": round(jain, 4),
            "firm_violations": len(self.violated),
            "preemptions": sum(self.causes.values()),
            "preemptions_by_cause": self.causes,
            "work_lost_s": round(self.lost_s, 1),
            "gpu_utilization": round(self.busy / self.capacity, 4) if self.capacity else None,
            "contended_share_of_time": None,
            "slo_misses": self.slo,
        }


def run(mode: str, days: float, seed: int, tick_s: float) -> dict:
    prices, forecast = load_prices_and_forecast(datasets.find(datasets.data_dir(), datasets.ERCOT))
    start = prices.start
    end = min(prices.end, start + days * 86400.0)
    site_list = sites()
    total = sum(s.power.gpus for s in site_list)
    sc = Scenario(site_list, prices, forecast, Hashprice.constant(45.0), arrivals(end - start, seed, total), events(start), start, end)
    config = SimConfig(tick_s=tick_s, tenancy=TENANCY if mode == "contracts" else None)
    began = time.perf_counter()
    sim = Measured(sc, config)
    sim.run()
    result = sim.figures()
    result["contended_share_of_time"] = round(sim.capacity / (sum(sim.region_gpus.values()) * (end - start)), 3)
    result["jobs"] = len(sc.arrivals)
    result["wall_s"] = round(time.perf_counter() - began, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tick-s", type=float, default=60.0)
    args = parser.parse_args()
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {mode: pool.submit(run, mode, args.days, args.seed, args.tick_s) for mode in ("contracts", "baseline")}
        results = {mode: f.result() for mode, f in futures.items()}
    print(json.dumps({"bench": "fair_share", "days": args.days, "seed": args.seed, **results}))


if __name__ == "__main__":
    main()
