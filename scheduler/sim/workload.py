"""AI job arrivals generated when no arrivals CSV is given (seeded, reproducible).

Inference, from the Azure LLM inference trace (one real hour of request arrivals with
prompt and generated tokens, azure_llm_inference_*.csv in the data folder, data.py): the hour is
cut into blocks of `block_s` (15 min); each block's GPU work is prompt tokens /
PREFILL_TOKENS_PER_GPU_S + generated tokens / DECODE_TOKENS_PER_GPU_S, summed over the
trace files. The busiest block is scaled to `inference_share` of all GPUs; every
block of the run (the hour repeats) gets that many GPUs of inference as services of
`inference_job_gpus` GPUs that start at the block's start and serve for one block.
The trace's own volume would fill a handful of GPUs: only its shape is used.
Inference has priority 10, no slowdown tolerance, and earns 2.35 USD/GPU-h (H100
rental, March 2026, DOMAIN.md).

Training: Poisson arrivals at a rate that keeps `training_share` of all GPUs busy on
average (35 %: with inference, about two thirds of the GPUs are in demand);
gangs of 128..2,048 GPUs (halved until they fit the largest site), 1..24 h
at full power, slowdown tolerance 0/10/25/50 % (the tags of Emerald AI's Conductor
trial, DOMAIN.md), priority 0 or 1, earning 1.70 USD/GPU-h (H100, October 2025).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from scheduler.core.jobs import JobKind
from scheduler.sim.files import InputError, number, parse_time, read_csv
from scheduler.sim.scenario import Arrival

PREFILL_TOKENS_PER_GPU_S = 10_000.0  # assumed serving throughput of one H100-class GPU
DECODE_TOKENS_PER_GPU_S = 1_000.0
INFERENCE_PRIORITY = 10
INFERENCE_USD_PER_GPU_HOUR = 2.35
TRAINING_USD_PER_GPU_HOUR = 1.70
TRAINING_GPUS = ((128, 0.30), (256, 0.30), (512, 0.20), (1024, 0.15), (2048, 0.05))
TRAINING_HOURS = ((1, 0.20), (2, 0.20), (4, 0.25), (8, 0.20), (12, 0.10), (24, 0.05))
TRAINING_TOLERANCE_PCT = ((0, 0.25), (10, 0.25), (25, 0.25), (50, 0.25))
TRAINING_PRIORITY = ((0, 0.7), (1, 0.3))


def inference_shape(paths: list[Path], block_s: float) -> list[float]:
    """GPU-seconds of work per block of the traces' span (all files on one clock)."""
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
    first = min(t for t, _ in points)
    blocks = [0.0] * (int((max(t for t, _ in points) - first) // block_s) + 1)
    for t, work in points:
        blocks[int((t - first) // block_s)] += work
    if len(blocks) > 1 and blocks[-1] < 0.5 * sum(blocks[:-1]) / (len(blocks) - 1):
        blocks.pop()  # a partial last block
    return blocks


def inference_arrivals(shape: list[float], total_gpus: int, duration_s: float, share: float, job_gpus: int, block_s: float) -> list[Arrival]:
    peak = max(shape) or 1.0
    peak_jobs = share * total_gpus / job_gpus
    arrivals = []
    for b in range(int(math.ceil(duration_s / block_s))):
        jobs = int(round(peak_jobs * shape[b % len(shape)] / peak))
        for k in range(jobs):
            arrivals.append(
                Arrival(
                    b * block_s,
                    JobKind.INFERENCE,
                    job_gpus,
                    block_s,
                    INFERENCE_PRIORITY,
                    0.0,
                    (),
                    INFERENCE_USD_PER_GPU_HOUR,
                    f"inf-{b:05d}-{k:03d}",
                )
            )
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
    inference_job_gpus: int = 64,
    block_s: float = 900.0,
    training_share: float = 0.35,
) -> list[Arrival]:
    """The default workload: inference shaped by the Azure trace plus Poisson training."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    job_gpus = max(1, min(inference_job_gpus, max_site_gpus))
    if azure_paths and total_gpus > 0 and inference_share > 0:
        arrivals += inference_arrivals(inference_shape(azure_paths, block_s), total_gpus, duration_s, inference_share, job_gpus, block_s)
    if max_site_gpus > 0:
        arrivals += training_arrivals(rng, duration_s, training_rate_per_s(total_gpus, max_site_gpus, training_share), max_site_gpus)
    return sorted(arrivals, key=lambda a: (a.time_s, a.job_id))
