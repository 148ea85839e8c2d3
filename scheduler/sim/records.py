"""What a simulation is given and what it writes: the scenario, the settings, one job's
books (SimJob) and one site-tick's row of timeseries.csv (Row). Plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from scheduler.core.contracts import TenancyPolicy
from scheduler.core.gpu_speed import ZEUS_SPEED_CURVE, SpeedCurve
from scheduler.core.grid import GridEvent
from scheduler.core.jobs import Job
from scheduler.core.mining import MiningPolicy
from scheduler.core.mining_outlook import Program
from scheduler.core.priority import PreemptionPolicy
from scheduler.sim.scenario import Arrival, ScenarioSite
from scheduler.sim.traces import Hashprice, PriceTrace


class Row(NamedTuple):
    """One tick of one site, as timeseries.csv has it (powers: averages over the tick)."""

    time: float
    site: str
    cap_w: float  # enforced at the tick's start
    planning_cap_w: float  # what dispatch planned under
    price: float  # real-time USD/MWh at the tick's start
    ai_w: float  # IT power
    mining_w: float  # IT power
    overhead_w: float  # cooling and losses
    committed_w: float  # what dispatch committed: AI claims (running, starting, stopping) + fleets at their new targets
    unconfirmed_w: float  # more it still counted for fleets not yet confirmed down (max(target, held) - target)
    measured_w: float  # at the meter: ai + mining + overhead
    peak_w: float  # highest meter power within the tick
    hashprice: float
    violation: int  # 1: the meter exceeded the enforced cap at some moment of the tick
    tick_s: float


@dataclass(frozen=True)
class SimConfig:
    tick_s: float = 60.0
    order_delay_s: float = 1.0  # scheduler -> agent
    reading_delay_s: float | None = None  # agent -> scheduler; None: one tick
    lead_s: float | None = None  # the scheduler's cap_lead_s (added to the slowest ramp-down); None: order delay + one tick
    inference_slo_s: float = 300.0  # inference must get its GPUs within this of arriving (or of a shed)
    training_deadline_factor: float = 2.0  # training must finish by arrival + factor x its duration
    # One ERCOT interval of dwell; the trace's clock is its local wall time read as UTC (files.py), so the
    # outlook's 4CP window is read in UTC. policy="outlook" (--mining-policy) runs the outlook policy.
    policy: MiningPolicy = MiningPolicy(min_on_s=900.0, min_off_s=900.0, timezone="UTC")
    forecast_ahead_s: float = 6 * 3600.0  # day-ahead prices posted this far ahead (ERCOT publishes the next day by 13:30)
    # Counted in the report (core/grid_money.py): an ERS-like commitment per site (bench/economics.py's example),
    # its events after a settled price >= program_event_price for program_event_steps intervals, and 4CP.
    program: Program | None = Program("ers-like", committed_w=10e6, capacity_usd_per_mw_h=8.0, energy_usd_per_mwh=100.0)
    program_event_price: float = 1000.0
    program_event_steps: int = 4
    cp4_usd_per_kw_year: float = 60.0  # an assumed transmission tariff
    speed: SpeedCurve = ZEUS_SPEED_CURVE  # training speed at a GPU power fraction
    speed_source: str = "built-in (scheduler/core/gpu_speed.py)"
    serve_cooldown_s: float = 30.0  # the scheduler's default: a service scales down after demand stayed low this long
    preemption: PreemptionPolicy = PreemptionPolicy()  # the scheduler's default: preemption for priority (core/priority.py)
    tenancy: TenancyPolicy | None = None  # contracts and fair share (core/contracts.py); None: none, as the default config


@dataclass(frozen=True)
class Scenario:
    sites: tuple[ScenarioSite, ...]
    prices: PriceTrace
    forecast: PriceTrace | None
    hashprice: Hashprice
    arrivals: tuple[Arrival, ...]
    events: tuple[GridEvent, ...]
    start: float
    end: float


@dataclass
class SimJob:
    arrival: Arrival
    job: Job
    arrived_at: float
    remaining_s: float  # work left at full power
    waiting_since: float  # when it last (re)joined the queue
    first_start: float | None = None
    finished_at: float | None = None
    preemptions: int = 0
    priority_preemptions: int = 0  # of which for a higher-priority job
    slo_missed: bool = False
    slowdown_s: float = 0.0  # how much longer it ran because its GPUs were power-capped
    work_gpu_s: float = 0.0  # full-power GPU-seconds done (less what stops lost)
    lost_s: float = 0.0  # full-power seconds of work its stops lost (redone after)

