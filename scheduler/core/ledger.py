"""The power ledger of one site: who holds how much of the cap right now.

Claims, strongest first: the grid cap; inference; training; mining. The ledger
counts each AI run at its GPUs' load power times its power cap (training may be
power-capped within the slowdown its spec tolerates), the site's idle GPUs at idle
power, and each mining fleet at the larger of its target and its last measured
power (a fleet still ramping down holds what it draws), all times the site's
overhead. The invariant every decision keeps: committed <= cap.

Slowdown tolerance -> GPU power fraction comes from the one training speed curve,
`gpu_speed.ZEUS_SPEED_CURVE` (Zeus, NSDI '23, measurements in
scheduler/sim/sample_data/zeus_*): the lowest fraction whose slowdown 1/speed - 1 stays
within the tolerance (10 %: 0.754, 25 %: 0.662, 50 %: 0.586).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.core.gpu_speed import ZEUS_SPEED_CURVE
from scheduler.core.jobs import Job, JobKind
from scheduler.core.power import SitePower


def power_fraction_for_slowdown(tolerance_pct: float) -> float:
    """Lowest GPU power fraction a training run may be capped to for this tolerance:
    the lowest whose slowdown on the Zeus speed curve stays within it."""
    return ZEUS_SPEED_CURVE.fraction_for_slowdown(tolerance_pct)


@dataclass(frozen=True)
class AiClaim:
    """An active AI run's claim on a site's power."""

    job_id: str
    kind: JobKind
    priority: int
    seq: int
    gpus: int
    slowdown_tolerance_pct: float = 0.0
    power_fraction: float = 1.0  # its GPU power cap, as a fraction of load power
    gpus_per_replica: int = 0  # Serve inference: GPUs of one replica (0: not scalable)
    min_gpus: int = 0  # Serve inference: GPUs at its fewest replicas
    give_way: int = 0  # where its tenant's runs give way in a cut (contracts' cut order: lower first; core/cut_order.py)

    @property
    def flexible(self) -> bool:
        return self.kind == JobKind.TRAINING

    @property
    def shrinkable_gpus(self) -> int:
        """GPUs a Serve inference run can give up by scaling down to its fewest replicas."""
        if self.kind != JobKind.INFERENCE or self.gpus_per_replica <= 0:
            return 0
        return max(0, self.gpus - max(self.min_gpus, self.gpus_per_replica))

    @property
    def min_power_fraction(self) -> float:
        return power_fraction_for_slowdown(self.slowdown_tolerance_pct) if self.flexible else 1.0


def claim_for(job: Job) -> AiClaim:
    """An active job's claim: the GPUs it holds now (a Serve service's follow its replicas).

    A pure function of one frozen `Job` version, asked for every active run on every
    capacity query and dispatch pass: it is kept on that version (in its instance
    dictionary, as functools.cached_property does; no field, so equality, `asdict` and
    `dataclasses.replace` never see it) and made once per version."""
    cached = job.__dict__.get(_CLAIM)
    if cached is None:
        cached = job.__dict__[_CLAIM] = _make_claim(job)
    return cached


_CLAIM = "_ledger_claim"


def _make_claim(job: Job) -> AiClaim:
    spec = job.spec
    per_replica = spec.resources.gpus if spec.served else 0
    return AiClaim(
        job.job_id,
        spec.kind,
        spec.priority,
        job.seq,
        job.total_gpus,
        spec.slowdown_tolerance_pct,
        job.power_fraction,
        per_replica,
        per_replica * spec.replica_bounds[0],
    )


@dataclass(frozen=True)
class SiteLedger:
    site: SitePower
    cap_w: float
    ai: tuple[AiClaim, ...] = ()
    mining_w: Mapping[str, float] = field(default_factory=dict)  # fleet_id -> max(target, measured)

    def claim_it_w(self, claim: AiClaim) -> float:
        """IT power of a run above what its GPUs would draw idle."""
        return claim.gpus * (self.site.gpu_load_w * claim.power_fraction - self.site.gpu_idle_w)

    @functools.cached_property
    def ai_it_w(self) -> float:
        """All GPUs at idle plus every run's draw above idle (a ledger is frozen: summed once)."""
        load_w, idle_w = self.site.gpu_load_w, self.site.gpu_idle_w  # claim_it_w, inlined: dispatch sums this often
        return self.site.gpus * idle_w + sum(c.gpus * (load_w * c.power_fraction - idle_w) for c in self.ai)

    def adding(self, claim: AiClaim) -> SiteLedger:
        """This ledger with one more claim; its AI sum follows from this one's, not summed again."""
        ledger = SiteLedger(self.site, self.cap_w, (*self.ai, claim), self.mining_w)
        ledger.__dict__["ai_it_w"] = self.ai_it_w + self.claim_it_w(claim)  # what cached_property would keep
        return ledger

    @property
    def mining_it_w(self) -> float:
        return sum(self.mining_w.get(f.fleet_id, f.standby_w) for f in self.site.fleets)

    @property
    def committed_w(self) -> float:
        return (self.ai_it_w + self.mining_it_w) * self.site.overhead

    @property
    def within_cap(self) -> bool:
        return self.committed_w <= self.cap_w + 1e-3

    def free_for_ai_w(self) -> float:
        """Meter power a new AI run could take once mining is down to its paused floor."""
        return self.cap_w - (self.ai_it_w + self.site.mining_floor_w) * self.site.overhead

    def run_power_w(self, gpus: int) -> float:
        """Meter power a new run of `gpus` GPUs adds (its GPUs were counted idle)."""
        return gpus * (self.site.gpu_load_w - self.site.gpu_idle_w) * self.site.overhead
