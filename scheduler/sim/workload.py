"""AI job arrivals generated when no arrivals CSV is given (seeded, reproducible).

Inference: long-running services on Ray Serve (services.py), not short jobs. A service
arrives, serves for SERVICE_HOURS (6 h to a week) and ends. Each runs replicas of
SERVICE_REPLICA_GPUS GPUs between min and max replicas; its demand (requests/s) follows
a daily curve (trough 35 % of the peak at night, peak in the US afternoon) times the
Azure LLM inference trace's per-minute shape (azure_llm_inference_*.csv in the data
folder, data.py), which repeats every hour: the trace is one real hour, so only its
shape and its work per request are used. A request costs prompt tokens /
PREFILL_TOKENS_PER_GPU_S + generated tokens / DECODE_TOKENS_PER_GPU_S GPU-seconds (the
trace's mean); a replica is meant to serve its GPUs' worth at TARGET_UTILIZATION
(target_rps_per_replica). A service's peak demand is 90 % of what its max replicas
serve; its min replicas serve its night trough. Services are as many as keep
`inference_share` of all GPUs busy at every service's peak (at max replicas), in steady
state from the first tick (those running at the start have their residual lifetimes),
with Poisson arrivals replacing those that end. Until serve scaling is wired into the
engine a service runs at its starting size (min replicas).
Inference has priority 10, no slowdown tolerance, and earns 2.35 USD/GPU-h (H100
rental, March 2026, DOMAIN.md).

Training: Poisson arrivals at a rate that keeps `training_share` of all GPUs busy on
average (35 %); gangs of 128..2,048 GPUs (halved until they fit the largest site),
1..24 h at full power, slowdown tolerance 0/10/25/50 % (the tags of Emerald AI's
Conductor trial, DOMAIN.md), priority 0 or 1, earning 1.70 USD/GPU-h (H100, October
2025); they checkpoint as services.py assumes, with the default 30 s grace.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from scheduler.core.jobs import JobKind
from scheduler.sim.files import InputError, number, parse_time, read_csv
from scheduler.sim.scenario import Arrival
from scheduler.sim.services import Demand, Service

PREFILL_TOKENS_PER_GPU_S = 10_000.0  # assumed serving throughput of one H100-class GPU
DECODE_TOKENS_PER_GPU_S = 1_000.0
INFERENCE_PRIORITY = 10
INFERENCE_USD_PER_GPU_HOUR = 2.35
TRAINING_USD_PER_GPU_HOUR = 1.70
TRAINING_GPUS = ((128, 0.30), (256, 0.30), (512, 0.20), (1024, 0.15), (2048, 0.05))
TRAINING_HOURS = ((1, 0.20), (2, 0.20), (4, 0.25), (8, 0.20), (12, 0.10), (24, 0.05))
TRAINING_TOLERANCE_PCT = ((0, 0.25), (10, 0.25), (25, 0.25), (50, 0.25))
TRAINING_PRIORITY = ((0, 0.7), (1, 0.3))
SERVICE_REPLICA_GPUS = 8  # one 8-GPU node per replica
SERVICE_MAX_REPLICAS = ((2, 0.30), (4, 0.30), (8, 0.25), (16, 0.15))
SERVICE_HOURS = ((6, 0.20), (24, 0.30), (72, 0.30), (168, 0.20))  # how long a service serves
TARGET_UTILIZATION = 0.6  # share of its GPUs' throughput a replica is sized to serve
PEAK_OF_MAX = 0.9  # a service's peak demand, as a share of what its max replicas serve
TROUGH = 0.35  # night demand as a share of the peak (assumed)
PEAK_HOUR_UTC = 20.0  # 14:00 in Texas


def _requests(paths: list[Path]) -> list[tuple[float, float]]:
    """(time, GPU-seconds of work) of every request in the traces (all files on one clock)."""
    points: list[tuple[float, float]] = []
    for path in paths:
        _, rows = read_csv(path, required=("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
        for line, row in rows:
            try:
                t = parse_time(row["TIMESTAMP"])
            except ValueError as err:
                raise InputError(path, str(err), line, "TIMESTAMP") from None
            prompt = number(path, line, "ContextTokens", row["ContextTokens"], minimum=0)
            generated = number(path, line, "GeneratedTokens", row["GeneratedTokens"], minimum=0)
            points.append((t, prompt / PREFILL_TOKENS_PER_GPU_S + generated / DECODE_TOKENS_PER_GPU_S))
    if not points:
        raise InputError(", ".join(map(str, paths)), "the Azure trace has no requests")
    return points


def inference_shape(paths: list[Path], block_s: float, points: list[tuple[float, float]] | None = None) -> list[float]:
    """GPU-seconds of work per block of the traces' span (all files on one clock)."""
    points = points if points is not None else _requests(paths)
    first = min(t for t, _ in points)
    blocks = [0.0] * (int((max(t for t, _ in points) - first) // block_s) + 1)
    for t, work in points:
        blocks[int((t - first) // block_s)] += work
    if len(blocks) > 1 and blocks[-1] < 0.5 * sum(blocks[:-1]) / (len(blocks) - 1):
        blocks.pop()  # a partial last block
    return blocks


def demand_shape(paths: list[Path], step_s: float = 60.0) -> tuple[tuple[float, ...], float]:
    """(per-step factors of mean 1, mean GPU-seconds per request) of the traces."""
    points = _requests(paths)
    blocks = inference_shape(paths, step_s, points)
    mean = sum(blocks) / len(blocks)
    return tuple(b / mean for b in blocks) if mean > 0 else (), sum(w for _, w in points) / len(points)


def _lifetime(rng: random.Random, residual: bool) -> float:
    """Seconds a service serves; `residual`: what is left of one already running at the
    start (length-biased, then a uniform share of it)."""
    table = SERVICE_HOURS if not residual else tuple((h, p * h) for h, p in SERVICE_HOURS)
    hours = _pick(rng, table)
    return hours * 3600.0 * (rng.random() if residual else 1.0)


def inference_services(
    rng: random.Random, shape: tuple[float, ...], work_per_request_s: float, total_gpus: int, max_site_gpus: int, duration_s: float, share: float
) -> list[Arrival]:
    """Inference services that keep `share` of `total_gpus` busy at their peaks."""
    replica_gpus = max(1, min(SERVICE_REPLICA_GPUS, max_site_gpus))
    most = max(1, max_site_gpus // replica_gpus)
    sizes = tuple((min(r, most), p) for r, p in SERVICE_MAX_REPLICAS)
    per_service = replica_gpus * sum(r * p for r, p in sizes)
    count = share * total_gpus / per_service
    mean_life = sum(h * 3600.0 * p for h, p in SERVICE_HOURS)
    target = replica_gpus * TARGET_UTILIZATION / max(1e-9, work_per_request_s)
    arrivals: list[Arrival] = []

    def service(at: float, life: float) -> None:
        high = int(_pick(rng, sizes))
        peak = PEAK_OF_MAX * high * target
        demand = Demand(peak, TROUGH, PEAK_HOUR_UTC + rng.uniform(-2.0, 2.0), shape)
        low = max(1, min(high, math.ceil(peak * TROUGH / target - 1e-9)))
        arrivals.append(
            Arrival(
                at,
                JobKind.INFERENCE,
                replica_gpus * low,
                max(60.0, life),
                INFERENCE_PRIORITY,
                0.0,
                (),
                INFERENCE_USD_PER_GPU_HOUR,
                f"inf-{len(arrivals) + 1:05d}",
                service=Service(replica_gpus, low, high, target, demand),
            )
        )

    for _ in range(int(round(count))):
        service(0.0, _lifetime(rng, residual=True))
    t, rate = 0.0, count / mean_life
    while rate > 0:
        t += rng.expovariate(rate)
        if t >= duration_s:
            break
        service(t, _lifetime(rng, residual=False))
    return arrivals


def _pick(rng: random.Random, table: tuple[tuple[float, float], ...]) -> float:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _fit(gpus: int, max_gpus: int) -> int:
    while gpus > max_gpus and gpus > 1:
        gpus //= 2
    return gpus


def training_rate_per_s(total_gpus: int, max_gpus: int, share: float) -> float:
    """Arrivals per second that keep `share` of `total_gpus` busy on average."""
    gpus = sum(_fit(int(g), max_gpus) * p for g, p in TRAINING_GPUS)
    seconds = sum(h * 3600.0 * p for h, p in TRAINING_HOURS)
    return share * total_gpus / (gpus * seconds)


def training_arrivals(rng: random.Random, duration_s: float, rate: float, max_gpus: int) -> list[Arrival]:
    arrivals: list[Arrival] = []
    t, n = 0.0, 0
    while rate > 0:
        t += rng.expovariate(rate)
        if t >= duration_s:
            break
        gpus = _fit(int(_pick(rng, TRAINING_GPUS)), max_gpus)
        n += 1
        arrivals.append(
            Arrival(
                t,
                JobKind.TRAINING,
                gpus,
                _pick(rng, TRAINING_HOURS) * 3600.0,
                int(_pick(rng, TRAINING_PRIORITY)),
                _pick(rng, TRAINING_TOLERANCE_PCT),
                (),
                TRAINING_USD_PER_GPU_HOUR,
                f"train-{n:05d}",
            )
        )
    return arrivals


def generate(
    azure_paths: list[Path],
    total_gpus: int,
    max_site_gpus: int,
    duration_s: float,
    seed: int,
    inference_share: float = 0.30,
    training_share: float = 0.35,
) -> list[Arrival]:
    """The default workload: inference services shaped by the Azure trace plus Poisson training."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    if azure_paths and total_gpus > 0 and max_site_gpus > 0 and inference_share > 0:
        shape, work = demand_shape(azure_paths)
        arrivals += inference_services(random.Random(seed + 1), shape, work, total_gpus, max_site_gpus, duration_s, inference_share)
    if max_site_gpus > 0:
        arrivals += training_arrivals(rng, duration_s, training_rate_per_s(total_gpus, max_site_gpus, training_share), max_site_gpus)
    return sorted(arrivals, key=lambda a: (a.time_s, a.job_id))
