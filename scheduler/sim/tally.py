"""Running counts of simulated jobs: what the report needs of each job, folded in one
job at a time so that finished jobs can be dropped (memory stays flat in days).

`JobTally.add(job, end, config)` folds a job as it stands at `end` (the end of the run);
a finished job's figures no longer change, so it is folded once, when it finishes, and
the jobs still live are folded into a copy when the report is written
(report._jobs_summary). The definitions are the report's (report.py docstring).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from scheduler.core.jobs import JobKind, JobState


@dataclass
class JobTally:
    arrived: int = 0
    states: dict[str, int] = field(default_factory=lambda: {"done": 0, "running": 0, "queued": 0})
    slo_misses: dict[str, int] = field(default_factory=lambda: {"inference": 0, "training": 0})
    preemptions: int = 0
    inference_shed: int = 0
    training_slowed: int = 0
    work_gpu_h: float = 0.0  # GPU-hours of work kept, as the plant counted it (a Serve service's follow its replicas; lost work is not in it)
    training_slowdown_s: float = 0.0
    lost_gpu_h: float = 0.0  # work that stops lost and that had to be done again
    priority_preemptions: int = 0  # training runs stopped for a higher-priority job
    training_delay_s: float = 0.0  # training's time not spent on work it kept (queued, stopped, redoing lost work, capped)

    def add(self, sj, end: float, config) -> None:
        """Fold one SimJob as it stands at `end`."""
        state = sj.job.state
        self.arrived += 1
        self.states["done" if state == JobState.SUCCEEDED else "running" if state == JobState.RUNNING else "queued"] += 1
        self.work_gpu_h += sj.work_gpu_s / 3600.0
        self.lost_gpu_h += sj.lost_s * sj.arrival.gpus / 3600.0
        if sj.arrival.kind == JobKind.INFERENCE:
            self.inference_shed += sj.preemptions
            waited_too_long = state in (JobState.PENDING, JobState.SCHEDULED) and end - sj.waiting_since > config.inference_slo_s
            self.slo_misses["inference"] += sj.slo_missed or waited_too_long
        else:
            self.preemptions += sj.preemptions
            self.priority_preemptions += sj.priority_preemptions
            done_s = sj.arrival.duration_s - sj.remaining_s
            self.training_delay_s += max(0.0, (sj.finished_at if sj.finished_at is not None else end) - sj.arrived_at - done_s)
            self.training_slowdown_s += sj.slowdown_s
            self.training_slowed += sj.slowdown_s > 0
            deadline = sj.arrived_at + config.training_deadline_factor * sj.arrival.duration_s
            late = sj.finished_at > deadline if sj.finished_at is not None else end > deadline
            self.slo_misses["training"] += late

    def with_jobs(self, jobs, end: float, config) -> JobTally:
        """A copy with `jobs` (those still live) folded in."""
        total = copy.deepcopy(self)
        for sj in jobs:
            total.add(sj, end, config)
        return total
