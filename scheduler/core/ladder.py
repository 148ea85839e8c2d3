"""The response ladder: what gives way, in which order, when a site's cap drops.

1. mining comes down, least efficient fleets first (merit order);
2. flexible training is power-capped, within the slowdown its spec tolerates;
3. training is preempted (it is requeued; it resumes from its checkpoint);
4. inference last: Serve services are first scaled down toward their fewest
   replicas (whole replicas, never below the fewest), then, only if the cap still
   needs it, inference runs are shed.
Within 2-4, lower priority goes first and, within a priority, the newest run; with
contracts, a run's `give_way` (its tenant's cut order: interruptible contracts, borrowed
runs, then firm ones by default; core/cut_order.py) comes before priority.
An emergency sheds all flexible load at once: mining to its paused floor and every
training run preempted; inference is kept unless a cap in force still needs it shed.

`respond_to_cap` is pure: it returns the steps, each with the power it frees and
its cause, and the ledger after them. `restore` lifts training power caps first
when the cap rises again (AI first; mining then refills by plan_mining).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.core.ledger import AiClaim, SiteLedger
from scheduler.core.power import curtail_least_efficient_first, curtail_order, watts_text

TOLERANCE_W = 1e-3  # the ledger's own tolerance (SiteLedger.within_cap): float dust is not excess


class StepKind(enum.Enum):
    CURTAIL_MINING = "curtail mining"
    CAP_TRAINING = "power-cap training"
    PREEMPT_TRAINING = "preempt training"
    SCALE_DOWN_INFERENCE = "scale down inference"
    SHED_INFERENCE = "shed inference"
    UNCAP_TRAINING = "lift training power cap"


@dataclass(frozen=True)
class LadderStep:
    kind: StepKind
    target: str  # fleet id or job id
    freed_w: float  # meter power this step frees (negative when it takes power back)
    cause: str
    detail: str = ""


@dataclass(frozen=True)
class LadderPlan:
    steps: tuple[LadderStep, ...]
    ledger: SiteLedger  # after every step

    @property
    def met(self) -> bool:
        return self.ledger.within_cap

    def jobs(self, kind: StepKind) -> list[str]:
        return [s.target for s in self.steps if s.kind == kind]


def _shed_order(claims: list[AiClaim]) -> list[AiClaim]:
    return sorted(claims, key=lambda c: (c.give_way, c.priority, -c.seq))


def curtail_mining(ledger: SiteLedger, cap_w: float, cause: str, everything: bool = False) -> tuple[dict[str, float], list[LadderStep]]:
    """Lower mining, least efficient fleets first, until the ledger fits `cap_w`
    (or to every fleet's paused floor when `everything`). Returns the new mining
    power per fleet and one step per fleet touched."""
    site = ledger.site
    mining = dict(ledger.mining_w)
    excess_it = ledger.committed_w / site.overhead - cap_w / site.overhead
    lowered, _ = curtail_least_efficient_first(site.fleets, mining, excess_it, everything=everything)
    steps: list[LadderStep] = []
    for fleet in curtail_order(f for f in site.fleets if f.fleet_id in lowered):
        current, new = mining.get(fleet.fleet_id, fleet.standby_w), lowered[fleet.fleet_id]
        mining[fleet.fleet_id] = new
        steps.append(LadderStep(StepKind.CURTAIL_MINING, fleet.fleet_id, (current - new) * site.overhead, cause, f"{fleet.model.name} to {watts_text(new)}"))
    return mining, steps


class _Tally:
    """The claims while the ladder climbs, and their power kept as a running sum (each step
    changes one claim: summing every claim again per step made a big cut quadratic)."""

    def __init__(self, ledger: SiteLedger, mining_w: Mapping[str, float], cap_w: float):
        self.ledger, self.cap_w = ledger, cap_w
        self.claims = {c.job_id: c for c in ledger.ai}
        self.mining_it_w = dataclasses.replace(ledger, mining_w=mining_w).mining_it_w
        self.ai_it_w = ledger.ai_it_w

    def excess(self) -> float:
        return (self.ai_it_w + self.mining_it_w) * self.ledger.site.overhead - self.cap_w

    def put(self, claim: AiClaim) -> None:
        self.ai_it_w += self.ledger.claim_it_w(claim) - self.ledger.claim_it_w(self.claims[claim.job_id])
        self.claims[claim.job_id] = claim

    def pop(self, job_id: str) -> AiClaim:
        claim = self.claims.pop(job_id)
        self.ai_it_w -= self.ledger.claim_it_w(claim)
        return claim


def respond_to_cap(ledger: SiteLedger, new_cap_w: float, cause: str, emergency: bool = False) -> LadderPlan:
    """Bring `ledger` under `new_cap_w`, climbing the ladder only as far as needed."""
    site = ledger.site
    ledger = dataclasses.replace(ledger, cap_w=new_cap_w)
    # 1. Mining, least efficient first.
    mining, mining_steps = curtail_mining(ledger, new_cap_w, cause, everything=emergency)
    steps: list[LadderStep] = list(mining_steps)
    tally = _Tally(ledger, mining, new_cap_w)
    training = _shed_order([c for c in tally.claims.values() if c.flexible])
    # 2. Power-cap training within its tolerance (not in an emergency: it is preempted outright).
    if not emergency:
        steps.extend(_cap_training(tally, training, cause))
    # 3. Preempt training.
    for claim in training:
        if not emergency and tally.excess() <= TOLERANCE_W:
            break
        current = tally.pop(claim.job_id)
        freed = ledger.claim_it_w(current) * site.overhead
        steps.append(LadderStep(StepKind.PREEMPT_TRAINING, claim.job_id, freed, cause, "requeued; resumes from its checkpoint"))
    # 4. Inference, last, and only what the cap still needs (an emergency sheds flexible
    # load; inference gives way only when a cap in force is still exceeded). First Serve
    # services scale down toward their fewest replicas, then whole runs are shed.
    steps.extend(_scale_down_inference(tally, cause))
    for claim in _shed_order([c for c in tally.claims.values() if not c.flexible]):
        if tally.excess() <= TOLERANCE_W:
            break
        current = tally.pop(claim.job_id)
        steps.append(LadderStep(StepKind.SHED_INFERENCE, claim.job_id, ledger.claim_it_w(current) * site.overhead, cause, "inference shed"))
    after = dataclasses.replace(ledger, ai=tuple(tally.claims.values()), mining_w=mining)
    return LadderPlan(tuple(steps), after)


def _cap_training(tally: _Tally, training: list[AiClaim], cause: str) -> list[LadderStep]:
    """Lower training's GPU power within each run's tolerance, in order, until the excess is gone."""
    site, steps = tally.ledger.site, []
    for claim in training:
        need = tally.excess()
        if need <= TOLERANCE_W:
            break
        current = tally.claims[claim.job_id]
        per_fraction_w = current.gpus * site.gpu_load_w * site.overhead
        lowest = current.min_power_fraction
        if current.power_fraction <= lowest or per_fraction_w <= 0:
            continue
        fraction = max(lowest, current.power_fraction - need / per_fraction_w)
        freed = (current.power_fraction - fraction) * per_fraction_w
        tally.put(dataclasses.replace(current, power_fraction=fraction))
        steps.append(LadderStep(StepKind.CAP_TRAINING, current.job_id, freed, cause, f"GPU power to {fraction:.0%} (tolerates {current.slowdown_tolerance_pct:g}% slowdown)"))
    return steps


def bridge_with_gpu_caps(ledger: SiteLedger, cap_w: float, cause: str) -> LadderPlan:
    """A cap in force that mining, still ramping down, cannot meet yet (a cut with little or
    no notice): the fastest loads first. Training's GPU power caps act in milliseconds,
    miners in seconds, so training is power-capped within its tolerance to carry the gap
    until mining is read down (then the restore step gives the power back). `ledger` counts
    mining at what it may still draw; nothing is preempted and mining is not touched."""
    ledger = dataclasses.replace(ledger, cap_w=cap_w)
    tally = _Tally(ledger, ledger.mining_w, cap_w)
    steps = _cap_training(tally, _shed_order([c for c in tally.claims.values() if c.flexible]), cause)
    return LadderPlan(tuple(steps), dataclasses.replace(ledger, ai=tuple(tally.claims.values())))


def _scale_down_inference(tally: _Tally, cause: str) -> list[LadderStep]:
    """Take whole replicas off Serve inference runs (lowest priority, newest first),
    never below their fewest, until the tally's excess is gone."""
    site = tally.ledger.site
    steps: list[LadderStep] = []
    for claim in _shed_order([c for c in tally.claims.values() if c.shrinkable_gpus > 0]):
        need = tally.excess()
        if need <= TOLERANCE_W:
            break
        per_replica_w = claim.gpus_per_replica * (site.gpu_load_w * claim.power_fraction - site.gpu_idle_w) * site.overhead
        if per_replica_w <= 0:
            continue
        drop = min(math.ceil(need / per_replica_w - 1e-9), claim.shrinkable_gpus // claim.gpus_per_replica)
        if drop <= 0:
            continue
        smaller = dataclasses.replace(claim, gpus=claim.gpus - drop * claim.gpus_per_replica)
        tally.put(smaller)
        replicas, fewest = smaller.gpus // claim.gpus_per_replica, max(1, claim.min_gpus // claim.gpus_per_replica)
        steps.append(LadderStep(StepKind.SCALE_DOWN_INFERENCE, claim.job_id, drop * per_replica_w, cause, f"to {replicas} replicas (its fewest: {fewest})"))
    return steps


def restore(ledger: SiteLedger, new_cap_w: float, cause: str) -> LadderPlan:
    """The cap rose: give power back to capped training first, highest priority first."""
    site = ledger.site
    ledger = dataclasses.replace(ledger, cap_w=new_cap_w)
    claims = {c.job_id: c for c in ledger.ai}
    steps: list[LadderStep] = []
    for claim in sorted((c for c in ledger.ai if c.power_fraction < 1.0), key=lambda c: (-c.priority, c.seq)):
        room = new_cap_w - dataclasses.replace(ledger, ai=tuple(claims.values())).committed_w
        per_fraction_w = claim.gpus * site.gpu_load_w * site.overhead
        if room <= 0 or per_fraction_w <= 0:
            break
        fraction = min(1.0, claim.power_fraction + room / per_fraction_w)
        claims[claim.job_id] = dataclasses.replace(claim, power_fraction=fraction)
        steps.append(
            LadderStep(StepKind.UNCAP_TRAINING, claim.job_id, -(fraction - claim.power_fraction) * per_fraction_w, cause, f"GPU power back to {fraction:.0%}")
        )
    return LadderPlan(tuple(steps), dataclasses.replace(ledger, ai=tuple(claims.values())))


def floor_without_inference_w(ledger: SiteLedger) -> float:
    """The lowest meter power the ladder can bring the site to without touching inference:
    mining at its floor, training power-capped then preempted (what a demand-response
    program can count on: inference is not offered)."""
    plan = respond_to_cap(ledger, 0.0, "floor")
    kept = (StepKind.SCALE_DOWN_INFERENCE, StepKind.SHED_INFERENCE)
    return ledger.committed_w - sum(s.freed_w for s in plan.steps if s.kind not in kept)
