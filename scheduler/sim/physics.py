"""What a site really draws: its fleets, its AI runs and its agent, between two ticks.

The agent applies each order `order_delay_s` after the scheduler sent it (fleet
targets, run starts, stops and GPU power caps) and returns what it sees
`reading_delay_s` later: per fleet the measured power and the target it is ramping
to (taken at every tick), and each run's end or stop. Fleets move toward their
applied target at their model's ramp rates (power.ramp). A tick is cut into
segments at every order, run end, ramp end, cap change and price change, so within
a segment AI power is constant and each fleet's power is linear: energy, hashrate
and the highest meter power are exact, not sampled.

A cap violation is any moment the meter power (AI + fleets, times the overhead)
exceeds the cap enforced then (grid.enforced_cap) by more than VIOLATION_TOLERANCE_W.
A power-capped training run progresses at the relative speed of its power fraction
(core.gpu_speed.SpeedCurve, from the Zeus measurements: scheduler/sim/zeus.py), so it
finishes later; the extra time it spends is counted per job (TickTotals.slowdown_s).

Stopping a run, as the agent and the example workload do it (agents/checkpointing.py,
powerplane_sdk/checkpoints.py, examples/training/train_regression.py). A training run
checkpoints periodically (`Checkpointing.every_s` of full-power work; steps are
`step_s` long; a checkpoint takes `write_s` to write, the GPUs held and drawing). A
stop order ("stop", job, grace_s):
- with a grace (> 0) on a run that checkpoints: the agent asks the run to checkpoint;
  the run sees the request at the end of its current step, writes a checkpoint and
  exits. It keeps drawing power until then. If that is done within the grace, nothing
  is lost; else the agent stops it when the grace runs out, and the work since its
  last periodic checkpoint (the work done during the grace included) is lost;
- with no grace (0): it stops at once and loses the work since its last periodic
  checkpoint;
- a run that does not checkpoint (inference) stops at once and has nothing to lose.
Lost work is work not done: the run's `("stopped", job, remaining_s, lost_s)` report
counts it back into the remaining work, and the tick's totals take it out of the job's
work and AI revenue (TickTotals.lost_gpu_s).

Serve inference runs carry their demand curve (requests/s over time); each reading
also reports every running service's demand and replicas: ("serve", ((job, rps, replicas), ...)),
what the real agent sends in RunReport.serve (core.runs.ServeLoad).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.core.gpu_speed import ZEUS_SPEED_CURVE, SpeedCurve
from scheduler.core.power import SitePower, ramp

VIOLATION_TOLERANCE_W = 1.0  # the admission tolerance (admission.TOLERANCE_W)
DONE_S = 1e-6  # work left below which a run has finished
MIN_SEGMENT_S = 1e-6


@dataclass(frozen=True)
class Checkpointing:
    """How a training run checkpoints (full-power seconds of work, and wall seconds to write)."""

    every_s: float  # work between periodic checkpoints (at multiples of it, like the example's every N steps)
    step_s: float  # work per step: a checkpoint request is seen at the end of the current step
    write_s: float  # wall seconds a checkpoint takes to write (GPUs held and drawing, no progress)


@dataclass
class RunPhysics:
    job_id: str
    gpus: int
    fraction: float
    remaining_s: float  # work left, in seconds at full power
    usd_per_gpu_hour: float
    checkpointing: Checkpointing | None = None  # None: nothing to keep (inference)
    progress_s: float = 0.0  # the job's work done so far (it resumes from its checkpoint: the last one saved)
    demand: Callable[[float], float] | None = None  # Serve inference: requests/s at a moment
    replica_gpus: int = 0  # Serve inference: GPUs per replica
    saved_s: float = -1.0  # progress of its last checkpoint (< 0: progress_s at the start)
    stop_at: float | None = None  # stopping: when it exits (checkpoint written) or is stopped (grace over)
    stop_loses: bool = False  # stopping: the grace runs out before its checkpoint is written
    floor_s: float = 0.0  # stopping: remaining_s stays at or above this (it stops at its step's end)

    def __post_init__(self) -> None:
        if self.saved_s < 0:
            self.saved_s = self.progress_s

    def last_checkpoint_s(self) -> float:
        """Progress of the newest complete checkpoint (periodic ones at multiples of every_s)."""
        c = self.checkpointing
        if c is None or c.every_s <= 0:
            return self.saved_s
        return max(self.saved_s, math.floor(self.progress_s / c.every_s + 1e-9) * c.every_s)

    def unsaved_s(self) -> float:
        """Work a stop now would lose."""
        return max(0.0, self.progress_s - self.last_checkpoint_s()) if self.checkpointing else 0.0


@dataclass
class Environment:
    """The world around a site during a tick: caps in force, prices, hashprice."""

    cap_w: Callable[[float], float]  # grid.enforced_cap at a moment
    price: Callable[[float], float]  # real-time USD/MWh paid at a moment
    hashprice: Callable[[float], float]
    next_change: Callable[[float], float]  # the next moment any of them changes


@dataclass
class TickTotals:
    """Integrals over one tick of one site (joules of IT power unless named)."""

    ai_j: float = 0.0
    mining_j: float = 0.0
    meter_j: float = 0.0
    nameplate_j: float = 0.0  # what every fleet at full power would have drawn
    unused_headroom_j: float = 0.0  # headroom the cap and AI left that mining did not use
    mining_usd: float = 0.0
    ai_usd: float = 0.0
    power_usd: float = 0.0
    peak_meter_w: float = 0.0
    violation_s: float = 0.0
    max_excess_w: float = 0.0
    lost_gpu_s: float = 0.0  # full-power GPU-seconds done and then lost (stopped before a checkpoint held them)
    work_gpu_s: dict[str, float] = field(default_factory=dict)  # job -> full-power GPU-seconds done (less what was lost)
    slowdown_s: dict[str, float] = field(default_factory=dict)  # job -> seconds it ran longer for its power cap


class Plant:
    """One site's physical state and its agent."""

    def __init__(self, site: SitePower, order_delay_s: float, reading_delay_s: float, speed: SpeedCurve = ZEUS_SPEED_CURVE):
        self.site = site
        self.speed = speed  # relative training speed at a GPU power fraction
        self.order_delay_s = order_delay_s
        self.reading_delay_s = reading_delay_s
        self.fleet_w = {f.fleet_id: f.standby_w for f in site.fleets}
        self.applied = dict(self.fleet_w)  # the target each fleet ramps to
        self.runs: dict[str, RunPhysics] = {}
        self.services: dict[str, RunPhysics] = {}  # the runs with a demand curve (Serve inference)
        self._seq = itertools.count()
        self.orders: list[tuple[float, int, tuple]] = []
        self.outbox: list[tuple[float, int, tuple]] = []  # messages to the scheduler

    # --------------------------------------------------------------- orders in
    def send(self, now: float, order: tuple) -> None:
        """An order from the scheduler: ("target", fleet, w), ("start", RunPhysics),
        ("fraction", job, f), ("scale", job, replicas) or ("stop", job, checkpoint_grace_s)."""
        heapq.heappush(self.orders, (now + self.order_delay_s, next(self._seq), order))

    def _report(self, at: float, message: tuple) -> None:
        heapq.heappush(self.outbox, (at + self.reading_delay_s, next(self._seq), message))

    def receive(self, now: float) -> list[tuple]:
        """Messages the scheduler has by `now`, oldest first: ("started", job), ("reading", fleet,
        measured, acked), ("meter", meter_w, gpu_w, active jobs) after a tick's fleet readings,
        ("serve", ((job, requests_per_s, replicas), ...)), ("ended", job, at) and
        ("stopped", job, remaining_s, lost_s) (remaining_s includes the lost work)."""
        out = []
        while self.outbox and self.outbox[0][0] <= now:
            out.append(heapq.heappop(self.outbox)[2])
        return out

    def _apply_due(self, now: float, totals: TickTotals) -> None:
        while self.orders and self.orders[0][0] <= now:
            order = heapq.heappop(self.orders)[2]
            match order:
                case ("target", fleet_id, target_w):
                    self.applied[fleet_id] = target_w
                case ("start", run):
                    self.runs[run.job_id] = run
                    if run.demand is not None:
                        self.services[run.job_id] = run
                    self._report(now, ("started", run.job_id))
                case ("scale", job_id, replicas):
                    run = self.services.get(job_id)
                    if run is not None and run.stop_at is None:
                        run.gpus = replicas * max(1, run.replica_gpus)
                case ("fraction", job_id, fraction):
                    run = self.runs.get(job_id)
                    if run is not None and run.stop_at is None:  # a stopping run is not re-capped
                        run.fraction = fraction
                case ("stop", job_id, grace_s):
                    run = self.runs.get(job_id)
                    if run is None or run.stop_at is not None:
                        continue  # it ended first, and said so; or it is already stopping
                    ckpt = run.checkpointing
                    if grace_s <= 0 or ckpt is None:
                        self._stopped(run, now, totals)
                        continue
                    # Asked to checkpoint: it finishes its step, writes, exits; or is stopped at the grace.
                    step_end = math.ceil(run.progress_s / ckpt.step_s - 1e-9) * ckpt.step_s if ckpt.step_s > 0 else run.progress_s
                    to_step = min(run.remaining_s, max(0.0, step_end - run.progress_s))
                    saved_at = now + to_step / self.speed.speed(run.fraction) + ckpt.write_s
                    run.floor_s = run.remaining_s - to_step
                    run.stop_loses = saved_at > now + grace_s
                    run.stop_at = now + grace_s if run.stop_loses else saved_at

    def _stopped(self, run: RunPhysics, at: float, totals: TickTotals) -> None:
        """The run is gone: what it did not checkpoint is lost (a graceful exit saved it all)."""
        del self.runs[run.job_id]
        self.services.pop(run.job_id, None)
        if run.stop_at is not None and not run.stop_loses:
            run.saved_s = run.progress_s  # its exit checkpoint
        lost = run.unsaved_s()
        if lost > 0:
            totals.lost_gpu_s += lost * run.gpus
            totals.work_gpu_s[run.job_id] = totals.work_gpu_s.get(run.job_id, 0.0) - lost * run.gpus
            totals.ai_usd -= lost * run.gpus / 3600.0 * run.usd_per_gpu_hour
        self._report(at, ("stopped", run.job_id, run.remaining_s + lost, lost))

    # --------------------------------------------------------------- physics
    def ai_it_w(self) -> float:
        s = self.site
        return s.gpus * s.gpu_idle_w + sum(r.gpus * (s.gpu_load_w * r.fraction - s.gpu_idle_w) for r in self.runs.values())

    def _ramp_end(self) -> float:
        """Seconds until the first fleet still ramping reaches its target."""
        end = float("inf")
        for fleet in self.site.fleets:
            p, target = self.fleet_w[fleet.fleet_id], self.applied[fleet.fleet_id]
            if abs(p - target) > 1e-6:
                swing = max(1e-9, fleet.max_w - fleet.standby_w)
                ramp_s = fleet.model.ramp_down_s if target < p else fleet.model.ramp_up_s
                end = min(end, abs(p - target) / (swing / max(1e-9, ramp_s)))
        return end

    def _next_end(self, now: float) -> float:
        """Seconds until the first run finishes at its current pace, or its stop is over."""
        end = float("inf")
        for r in self.runs.values():
            if r.floor_s <= DONE_S:
                end = min(end, r.remaining_s / self.speed.speed(r.fraction))
            if r.stop_at is not None:
                end = min(end, r.stop_at - now)
        return max(0.0, end)

    def advance(self, t0: float, t1: float, env: Environment) -> TickTotals:
        """Run the site from `t0` to `t1`; the agent's readings at `t1` go out.
        Within the tick time is kept as seconds after `t0` (epoch seconds are too coarse
        for sub-microsecond segments)."""
        site, totals = self.site, TickTotals()
        nameplate = sum(f.max_w for f in site.fleets)
        floor = site.mining_floor_w
        span, x = t1 - t0, 0.0
        self._apply_due(t0, totals)
        while x < span:
            order_x = self.orders[0][0] - t0 if self.orders else span
            nxt = min(span, order_x, x + self._ramp_end(), x + self._next_end(t0 + x), env.next_change(t0 + x) - t0)
            nxt = max(nxt, x + MIN_SEGMENT_S) if nxt < span else span
            dt, now = nxt - x, t0 + x
            cap, price, hashprice = env.cap_w(now), env.price(now), env.hashprice(now)
            ai = self.ai_it_w()
            before = sum(self.fleet_w.values())
            hashrate = 0.0
            for fleet in site.fleets:
                p0 = self.fleet_w[fleet.fleet_id]
                p1 = ramp(fleet, p0, self.applied[fleet.fleet_id], dt)
                hashrate += fleet.hashrate_ths((p0 + p1) / 2)  # linear in power: exact over the segment
                self.fleet_w[fleet.fleet_id] = p1
            after = sum(self.fleet_w.values())
            self._meter(totals, (ai + before) * site.overhead, (ai + after) * site.overhead, cap, dt)
            mining = (before + after) / 2
            headroom = min(nameplate, max(floor, cap / site.overhead - ai))
            totals.ai_j += ai * dt
            totals.mining_j += mining * dt
            totals.meter_j += (ai + mining) * site.overhead * dt
            totals.nameplate_j += nameplate * dt
            totals.unused_headroom_j += max(0.0, headroom - mining) * dt
            totals.mining_usd += hashprice * hashrate / 1000.0 * dt / 86400.0
            totals.power_usd += (ai + mining) * site.overhead * dt / 3.6e9 * price
            for run in list(self.runs.values()):
                rate = self.speed.speed(run.fraction)
                work = max(0.0, min(run.remaining_s - run.floor_s, rate * dt))
                run.remaining_s -= work
                run.progress_s += work
                totals.work_gpu_s[run.job_id] = totals.work_gpu_s.get(run.job_id, 0.0) + work * run.gpus
                if rate < 1.0:  # the run spent work / rate seconds on `work` seconds of full-power work
                    totals.slowdown_s[run.job_id] = totals.slowdown_s.get(run.job_id, 0.0) + work * (1.0 / rate - 1.0)
                totals.ai_usd += work * run.gpus / 3600.0 * run.usd_per_gpu_hour
                if run.remaining_s <= DONE_S:
                    del self.runs[run.job_id]
                    self.services.pop(run.job_id, None)
                    self._report(t0 + nxt, ("ended", run.job_id, t0 + nxt))
                elif run.stop_at is not None and run.stop_at - t0 <= nxt + MIN_SEGMENT_S:
                    self._stopped(run, t0 + nxt, totals)
            x = nxt
            if x < span:
                self._apply_due(t0 + x, totals)
        for fleet in site.fleets:
            self._report(t1, ("reading", fleet.fleet_id, self.fleet_w[fleet.fleet_id], self.applied[fleet.fleet_id]))
        ai = self.ai_it_w()
        self._report(t1, ("meter", (ai + sum(self.fleet_w.values())) * site.overhead, ai, tuple(self.runs)))
        if self.services:
            self._report(t1, ("serve", tuple((r.job_id, r.demand(t1), r.gpus // max(1, r.replica_gpus)) for r in self.services.values())))
        return totals

    @staticmethod
    def _meter(totals: TickTotals, w0: float, w1: float, cap: float, dt: float) -> None:
        """Peak, time over the cap and largest excess of a linear meter segment."""
        totals.peak_meter_w = max(totals.peak_meter_w, w0, w1)
        limit = cap + VIOLATION_TOLERANCE_W
        e0, e1 = w0 - limit, w1 - limit
        if e0 <= 0 and e1 <= 0:
            return
        totals.max_excess_w = max(totals.max_excess_w, e0 + VIOLATION_TOLERANCE_W, e1 + VIOLATION_TOLERANCE_W)
        if e0 > 0 and e1 > 0 or dt <= 0:
            totals.violation_s += dt
        else:
            totals.violation_s += dt * max(e0, e1) / (abs(e0) + abs(e1))
