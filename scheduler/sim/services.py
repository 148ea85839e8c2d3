"""What the simulator knows about AI jobs beyond their GPUs and duration: how a
training run checkpoints, and what an inference service serves.

Training (the example workload, examples/training/train_regression.py, and the agent's
graceful stop, agents/checkpointing.py): a run checkpoints every `--checkpoint-every`
steps (20 by default there); with a preemption request it writes a checkpoint at the
end of its current step and exits, and the agent stops it after the job's
`checkpoint_grace_s` (30 s by default, core.jobs.DEFAULT_CHECKPOINT_GRACE_S) in any
case. For a real-size model we assume (an assumption, not a measurement here):
- a step is STEP_S of work at full GPU power;
- periodic checkpoints every CHECKPOINT_EVERY_S of work (teams space them so that their
  stall stays small: every 30 minutes of work);
- a checkpoint takes CHECKPOINT_WRITE_S to write: 6.3 s, the stall of PyTorch's async
  distributed checkpointing of a 7B model (DOMAIN.md; synchronous: 148.8 s, which no
  30 s grace would fit). Periodic checkpoints are taken as free (async, overlapped).

Inference (services on Ray Serve, core.jobs.JobSpec's serve fields and
core.autoscale): a service arrives, runs for hours to days and ends; its demand in
requests/s follows `Demand`: a daily curve (cosine between `trough` x peak and
the peak at `peak_hour_utc`) times a repeating intra-hour shape (per-minute factors of
mean 1: the Azure LLM trace's hour, see workload.py). Pure: a Demand is a function of time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scheduler.sim.physics import Checkpointing

STEP_S = 10.0
CHECKPOINT_EVERY_S = 1800.0
CHECKPOINT_WRITE_S = 6.3
DEFAULT_CHECKPOINTING = Checkpointing(CHECKPOINT_EVERY_S, STEP_S, CHECKPOINT_WRITE_S)
SERVE_IMPORT_PATH = "sim:service"
_RAD_PER_S = 2.0 * math.pi / 86400.0  # what makes a JobSpec `served` (the simulator deploys nothing)


@dataclass(frozen=True)
class Demand:
    """Requests/s of one service at a moment (epoch seconds)."""

    peak_rps: float
    trough: float = 0.35  # the night's demand as a share of the day's peak (assumed)
    peak_hour_utc: float = 20.0  # US afternoon (14:00 in Texas)
    shape: tuple[float, ...] = ()  # per-step factors of mean 1, repeating; (): flat
    shape_step_s: float = 60.0

    def daily(self, t: float) -> float:
        """The daily curve alone, as a share of the peak."""
        hour = (t % 86400.0) / 3600.0
        return self.trough + (1.0 - self.trough) * (1.0 + math.cos(2.0 * math.pi * (hour - self.peak_hour_utc) / 24.0)) / 2.0

    def __call__(self, t: float) -> float:
        """peak x daily(t) x the shape's factor at t (one reading per service per tick: kept cheap)."""
        daily = self.trough + (1.0 - self.trough) * (1.0 + math.cos(_RAD_PER_S * (t - self.peak_hour_utc * 3600.0))) / 2.0
        shape = self.shape
        return self.peak_rps * daily * (shape[int(t // self.shape_step_s) % len(shape)] if shape else 1.0)


@dataclass(frozen=True)
class Service:
    """An inference service's Serve fields (core.jobs.JobSpec) and its demand."""

    replica_gpus: int
    min_replicas: int
    max_replicas: int
    target_rps_per_replica: float
    demand: Demand

    @property
    def start_gpus(self) -> int:
        return self.replica_gpus * self.min_replicas
