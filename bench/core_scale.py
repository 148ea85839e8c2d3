"""Scale of the pure core: one full dispatch pass and one cap-event response.

100 sites, 100,000 miners in fleets (10 fleets of 100 per site, three models),
10,000 GPUs (100 per site, half of them busy with running AI claims) and 1,000
pending jobs. A dispatch pass = build every site's power view from its ledger,
place the pending jobs (power-aware placement), then run the scheduler's own
per-site pass (scheduler.core.dispatch.dispatch_site: ladder, reservations, merit-order
mining, make-room-first starts) on every site with its new runs waiting. A cap
event = dispatch_site for one site whose cap drops below what its AI draws with
mining paused (the ladder climbs to training; `cap_event_ms`), and, lighter, one
whose cap halves (mining alone meets it).
Baseline run side by side: the same pass with GPU-only placement (the
foundation's placement, no power, no per-site pass).

    .venv/bin/python bench/core_scale.py [--repeat 20]

Ends with one JSON line: sites, miners, gpus, pending_jobs, dispatch_ms, cap_event_ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.core.dispatch import SiteInputs, dispatch_site  # noqa: E402
from scheduler.core.jobs import JobKind, JobSpec, Resources, new_job  # noqa: E402
from scheduler.core.ledger import AiClaim, SiteLedger  # noqa: E402
from scheduler.core.placement import SiteCapacity, place  # noqa: E402
from scheduler.core.power import MINER_MODELS, Cooling, Fleet, SitePower  # noqa: E402

SITES, FLEETS_PER_SITE, MINERS_PER_FLEET, GPUS_PER_SITE, PENDING = 100, 10, 100, 100, 1000
MODELS = ("S19XP", "S21", "A2")


def build(seed: int = 7):
    rng = random.Random(seed)
    ledgers, regions = {}, ["us", "eu", "no"]
    for i in range(SITES):
        fleets = tuple(Fleet(f"s{i}-f{j}", MINER_MODELS[MODELS[j % 3]], MINERS_PER_FLEET) for j in range(FLEETS_PER_SITE))
        site = SitePower(
            f"site-{i:03d}", cap_w=5e6, overhead=Cooling.HYDRO.default_overhead, fleets=fleets, gpus=GPUS_PER_SITE, gpu_load_w=1200, gpu_idle_w=150
        )
        claims = tuple(
            AiClaim(
                f"run-{i}-{k}", JobKind.TRAINING if k % 2 else JobKind.INFERENCE, rng.randint(0, 5), k, 10, slowdown_tolerance_pct=rng.choice([0, 10, 25, 50])
            )
            for k in range(5)
        )
        ledgers[site.site_id] = (regions[i % 3], SiteLedger(site, site.cap_w, claims, {f.fleet_id: f.max_w for f in fleets}))
    pending = []
    for n in range(PENDING):
        spec = JobSpec(
            kind=JobKind.TRAINING,
            entrypoint="x",
            resources=Resources(gpus=rng.choice([1, 2, 4, 8])),
            priority=rng.randint(0, 5),
            allowed_regions=(rng.choice(regions),),
        )
        pending.append(new_job(f"job-{n}", "t", f"r{n}", spec, n, 0.0)[0])
    return ledgers, pending


def dispatch_pass(ledgers, pending, power_aware: bool) -> int:
    capacities, prices = [], {}
    for site_id, (region, ledger) in ledgers.items():
        used = sum(c.gpus for c in ledger.ai)
        extra = {}
        if power_aware:
            marginal = max(ledger.site.fleets, key=lambda f: f.model.joules_per_th)
            prices[site_id] = 30.0 + int(site_id[-3:]) % 40
            extra = dict(
                power_free_w=ledger.free_for_ai_w(),
                power_per_gpu_w=ledger.run_power_w(1),
                mining_value_usd_per_mwh=marginal.model.revenue_per_mwh(45) - prices[site_id] * ledger.site.overhead,
            )
        capacities.append(SiteCapacity(site_id, region, ledger.site.gpus, used, **extra))
    placement = place(pending, capacities)
    if power_aware:
        by_id = {j.job_id: j for j in pending}
        waiting: dict[str, list[AiClaim]] = {site_id: [] for site_id in ledgers}
        for job_id, site_id in placement.assignments:
            job = by_id[job_id]
            waiting[site_id].append(AiClaim(job_id, JobKind.TRAINING, job.spec.priority, job.seq, job.spec.total_gpus))
        for site_id, (_, ledger) in ledgers.items():
            dispatch_site(site_inputs(ledger, prices[site_id], tuple(waiting[site_id])), now=0.0)
    return len(placement.assignments)


def site_inputs(ledger: SiteLedger, price: float, waiting=(), cap_w: float | None = None) -> SiteInputs:
    """The site as the scheduler's shell would hand it over: mining at its targets, confirmed."""
    mining = dict(ledger.mining_w)
    return SiteInputs(ledger.site, ledger.cap_w if cap_w is None else cap_w, price, 45.0, ledger.ai, waiting, targets_w=mining, held_w=mining)


def met_after(ledger: SiteLedger, inputs: SiteInputs, response) -> bool:
    """Whether the site fits the cut once the agent has ramped to the new targets."""
    stopped = {*response.preempt, *response.shed}
    kept = tuple(dataclasses.replace(c, power_fraction=response.power_fractions.get(c.job_id, c.power_fraction)) for c in ledger.ai if c.job_id not in stopped)
    return SiteLedger(ledger.site, inputs.cap_w, kept, response.targets_w).within_cap


def timed(fn, repeat: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    ledgers, pending = build()
    miners = sum(f.count for _, l in ledgers.values() for f in l.site.fleets)
    gpus = sum(l.site.gpus for _, l in ledgers.values())
    baseline_ms, placed_gpu_only = timed(lambda: dispatch_pass(ledgers, pending, power_aware=False), args.repeat)
    dispatch_ms, placed = timed(lambda: dispatch_pass(ledgers, pending, power_aware=True), args.repeat)
    _, ledger = ledgers["site-000"]
    halved = site_inputs(ledger, 30.0, cap_w=ledger.committed_w * 0.5)
    half_ms, half = timed(lambda: dispatch_site(halved, now=0.0, cause="cap limit"), args.repeat)
    # A deep cut: below what AI alone draws with mining paused, so the ladder climbs to training.
    deep_cap = (SiteLedger(ledger.site, 0.0, ledger.ai, {}).ai_it_w + ledger.site.mining_floor_w) * ledger.site.overhead * 0.8
    deep = site_inputs(ledger, 30.0, cap_w=deep_cap)
    cap_event_ms, response = timed(lambda: dispatch_site(deep, now=0.0, cause="cap limit"), args.repeat)
    print(f"{SITES} sites, {miners} miners in {SITES * FLEETS_PER_SITE} fleets, {gpus} GPUs, {len(pending)} pending jobs (median of {args.repeat})")
    print(f"  dispatch pass, power-aware : {dispatch_ms:7.2f} ms  ({placed} placed)")
    print(f"  dispatch pass, GPUs only   : {baseline_ms:7.2f} ms  ({placed_gpu_only} placed)  ratio {dispatch_ms / baseline_ms:.2f}")
    for name, ms, inputs, out in (("halve one site's cap", half_ms, halved, half), ("cut below its AI load", cap_event_ms, deep, response)):
        kinds = sorted({step.kind.value for step in out.steps})
        print(f"  cap event, {name:<22}: {ms:6.2f} ms  ({len(out.steps)} steps: {', '.join(kinds)}; met={met_after(ledger, inputs, out)})")
    print(
        json.dumps(
            {
                "sites": SITES,
                "miners": miners,
                "gpus": gpus,
                "pending_jobs": len(pending),
                "dispatch_ms": round(dispatch_ms, 2),
                "cap_event_ms": round(cap_event_ms, 3),
                "cap_event_mining_only_ms": round(half_ms, 3),
                "gpu_only_dispatch_ms": round(baseline_ms, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
