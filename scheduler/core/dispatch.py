"""One dispatch pass over one site's power: the decision every shell shares.

The scheduler's controller runs it on every heartbeat, grid event and placement;
the simulator runs it on every tick of its fake clock. In one pass, in this order:

1. The response ladder (ladder.respond_to_cap) on the *commanded* ledger (mining
   at its targets: a fleet still ramping down to its target is no reason to climb
   further): mining down, then training power caps, then preemption, then
   inference. An emergency sheds all flexible load.
2. When nothing is over the cap, capped training gets its power back first (AI first),
   as far as the cap allows with every fleet counted at what it may still draw (`held`):
   power given back is load started, so it waits for mining to be read down too.
   But a grid cut already in force that mining, still ramping down, cannot meet yet
   (little or no notice) is bridged by the fastest loads: training is power-capped
   (milliseconds) until mining is read down, then gets its power back by this step.
3. Placed runs waiting for power are reserved in order while they fit with mining at
   its paused floor; one that no longer fits (the cap fell) goes back to the queue.
   A Serve service's scale-up (its extra replicas, `growing`) is reserved the same
   way, in the same priority order; one that does not fit just keeps its size.
4. Mining fills what AI (running and reserved) leaves, by merit order (mining.plan_mining;
   with `mining.policy: outlook`, outlook_dispatch.plan_mining_outlook on SiteInputs.outlook).
5. A waiting run (or a scale-up) starts only when it fits with every fleet counted at what it may
   still draw (`held_w`, confirmed by the agent: see admission.py): make room first,
   then start.
6. Fleets ramping *up* are trimmed so that, counted the same way, the site stays
   under its cap during the transition too.

Pure: prices, measurements and `now` are inputs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.core.ladder import LadderStep, StepKind, bridge_with_gpu_caps, respond_to_cap, restore
from scheduler.core.ledger import AiClaim, SiteLedger
from scheduler.core.mining import FleetState, MiningPolicy, plan_mining
from scheduler.core.outlook_dispatch import OutlookInputs, plan_mining_outlook
from scheduler.core.power import SitePower, watts_text


@dataclass(frozen=True)
class SiteInputs:
    site: SitePower
    cap_w: float  # the cap to plan under now (grid.planning_cap)
    price_usd_per_mwh: float  # expected price of the next interval (mining.expected_price)
    hashprice_usd_per_ph_day: float
    running: tuple[AiClaim, ...] = ()  # AI runs that hold power now
    waiting: tuple[AiClaim, ...] = ()  # placed runs waiting for power, in admission order
    stopping: tuple[AiClaim, ...] = ()  # runs ordered to stop, not yet confirmed gone: they still draw
    targets_w: Mapping[str, float] = field(default_factory=dict)  # fleet targets sent last
    held_w: Mapping[str, float] = field(default_factory=dict)  # the most each fleet may draw now (admission.py)
    fleet_states: Mapping[str, FleetState] = field(default_factory=dict)
    emergency: bool = False
    # Serve services that want more replicas: one claim per service for its *extra* GPUs
    # (keyed by its job id); they fit like waiting runs (make room first, then scale).
    growing: tuple[AiClaim, ...] = ()
    price_unknown: bool = False  # the node's price feed went stale (price_watch.py): mining holds at its floor
    resume_room_w: float = math.inf  # the most mining may rise by in this pass, at the meter (resume.py)
    cut_in_force_w: float = math.inf  # a grid event's cap the meter must meet now (inf: none in force)
    outlook: OutlookInputs | None = None  # what the outlook policy reads (given when mining.policy is "outlook")


@dataclass(frozen=True)
class SiteDispatch:
    targets_w: dict[str, float]
    fleet_states: dict[str, FleetState]
    power_fractions: dict[str, float]  # job_id -> new GPU power fraction (changed runs only)
    preempt: tuple[str, ...]  # training runs to stop and requeue
    shed: tuple[str, ...]  # inference runs to stop and requeue
    start: tuple[str, ...]  # waiting runs that may start now
    requeue: dict[str, str]  # waiting runs that no longer fit -> why
    waiting_reasons: dict[str, str]  # waiting runs that keep waiting -> why
    steps: tuple[LadderStep, ...]
    committed_w: float  # meter power counted after this pass (each fleet at max(new target, held))
    grow: tuple[str, ...] = ()  # Serve services whose scale-up may go out now
    grow_reasons: dict[str, str] = field(default_factory=dict)  # scale-ups that keep waiting -> why
    shrink: dict[str, int] = field(default_factory=dict)  # Serve services the ladder scaled down -> GPUs they keep
    raised_w: float = 0.0  # IT watts this pass let mining rise by (the resume pacing counts it)


def dispatch_site(inputs: SiteInputs, now: float, policy: MiningPolicy = MiningPolicy(), cause: str = "") -> SiteDispatch:
    site, cap = inputs.site, inputs.cap_w
    cause = cause or f"site cap {watts_text(cap)}"
    targets = {f.fleet_id: inputs.targets_w.get(f.fleet_id, f.standby_w) for f in site.fleets}
    commanded = SiteLedger(site, cap, inputs.running, targets)

    # 1-2. The ladder when over the cap (or in an emergency), else AI gets its power back first.
    steps: list[LadderStep] = []
    climbing = inputs.emergency or not commanded.within_cap
    if climbing:
        plan = respond_to_cap(commanded, cap, cause, emergency=inputs.emergency)
    else:
        # Power given back counts every fleet at what it may still draw (held), like a start:
        # a fleet lowered by an earlier pass and not yet read down has not made room yet.
        drawing = {f: max(w, inputs.held_w.get(f, w)) for f, w in targets.items()}
        plan = restore(dataclasses.replace(commanded, mining_w=drawing), cap, cause)
    steps.extend(plan.steps)
    running = plan.ledger.ai
    # 2b. A cut in force that mining, still ramping down, cannot meet yet (little or no
    # notice): training's GPU power caps, fast, carry the gap until mining is read down.
    # Only the caps go out: mining and starts are planned with training at its own power,
    # so the power the bridge frees is not handed on (and comes back by step 2).
    capped = running
    if not inputs.emergency and math.isfinite(inputs.cut_in_force_w):
        drawing_now = {f: max(w, inputs.held_w.get(f, w)) for f, w in plan.ledger.mining_w.items()}
        bridged = bridge_with_gpu_caps(dataclasses.replace(plan.ledger, mining_w=drawing_now), inputs.cut_in_force_w, f"{cause}, until mining is read down")
        steps.extend(bridged.steps)
        capped = bridged.ledger.ai
    preempt = tuple(plan.jobs(StepKind.PREEMPT_TRAINING))
    shed = tuple(plan.jobs(StepKind.SHED_INFERENCE))
    before = {c.job_id: c.power_fraction for c in inputs.running}
    fractions = {c.job_id: c.power_fraction for c in capped if abs(c.power_fraction - before[c.job_id]) > 1e-9}
    sizes = {c.job_id: c.gpus for c in inputs.running}
    shrink = {c.job_id: c.gpus for c in running if c.gpus < sizes[c.job_id]}

    # 3. Reserve power for waiting runs while they fit with mining at its floor.
    reserved: list[AiClaim] = []
    requeue: dict[str, str] = {}
    grow_reasons: dict[str, str] = {}
    growing = {c.job_id for c in inputs.growing}
    with_reserved = SiteLedger(site, cap, tuple(running), {})
    for claim in sorted((*inputs.waiting, *inputs.growing), key=lambda c: (-c.priority, c.seq)):
        probe = with_reserved
        if claim.job_id in growing:
            if climbing:
                grow_reasons[claim.job_id] = "the site is meeting a grid event: no scale-up now"
            elif probe.free_for_ai_w() + 1e-6 < probe.run_power_w(claim.gpus):
                grow_reasons[claim.job_id] = f"not enough power under the cap {watts_text(cap)} for {claim.gpus} more GPUs"
            else:
                reserved.append(claim)
                with_reserved = with_reserved.adding(claim)
        elif inputs.emergency and claim.flexible:
            requeue[claim.job_id] = "grid emergency at the site: flexible load is shed"
        elif probe.free_for_ai_w() + 1e-6 < probe.run_power_w(claim.gpus):
            requeue[claim.job_id] = f"the site's cap fell to {watts_text(cap)}: not enough power left for {claim.gpus} GPUs"
        else:
            reserved.append(claim)
            with_reserved = with_reserved.adding(claim)

    # 4. Mining fills what AI leaves (running and reserved), most efficient fleets first.
    ai_it_w = with_reserved.ai_it_w
    if inputs.emergency or inputs.price_unknown:
        planned = {f.fleet_id: f.standby_w for f in site.fleets}
        states = {f.fleet_id: _held_down(inputs.fleet_states.get(f.fleet_id, FleetState()), now, inputs.emergency) for f in site.fleets}
    else:
        if policy.policy == "outlook" and inputs.outlook is not None:
            mining_plan = plan_mining_outlook(site, ai_it_w, inputs.hashprice_usd_per_ph_day, inputs.outlook, inputs.fleet_states, targets, now, policy, cap)
        else:
            mining_plan = plan_mining(site, ai_it_w, inputs.price_usd_per_mwh, inputs.hashprice_usd_per_ph_day, inputs.fleet_states, now, policy, cap)
        planned, states = dict(mining_plan.targets_w), dict(mining_plan.states)

    # 5. Start waiting runs only once mining is measured down (raises not counted yet).
    held = {f.fleet_id: max(targets[f.fleet_id], inputs.held_w.get(f.fleet_id, targets[f.fleet_id])) for f in site.fleets}
    stopped_now = tuple(c for c in inputs.running if c.job_id in preempt or c.job_id in shed)
    # Replicas the ladder took off still draw until the agent confirms them gone.
    stopped_now += tuple(dataclasses.replace(c, gpus=c.gpus - shrink[c.job_id]) for c in inputs.running if c.job_id in shrink)
    now_ledger = SiteLedger(site, cap, (*running, *inputs.stopping, *stopped_now), held)
    start: list[str] = []
    grow: list[str] = []
    waiting_reasons: dict[str, str] = {}
    for claim in reserved:
        with_run = now_ledger.adding(claim)
        if with_run.within_cap:
            now_ledger = with_run
            (grow if claim.job_id in growing else start).append(claim.job_id)
        else:
            why = f"waiting for mining to come down to {watts_text(sum(planned.values()))} to make room"
            (grow_reasons if claim.job_id in growing else waiting_reasons)[claim.job_id] = why

    # 6. Fleets ramping up get only what the site has left, counted with measured power,
    # and no more than the resume pacing allows now; a lowered target is sent as planned.
    room_it = cap / site.overhead - now_ledger.ai_it_w - sum(held.values())
    pace_it = inputs.resume_room_w / site.overhead
    new_targets = dict(planned)
    for fleet in sorted(site.fleets, key=lambda f: (f.model.joules_per_th, f.fleet_id)):
        raise_w = planned[fleet.fleet_id] - held[fleet.fleet_id]
        if raise_w > 0:
            granted = fleet.whole_miners_w(max(0.0, min(raise_w, room_it, pace_it)))
            room_it -= granted
            pace_it -= granted
            new_targets[fleet.fleet_id] = held[fleet.fleet_id] + granted
    after = {fid: max(new_targets[fid], held[fid]) for fid in new_targets}
    committed = SiteLedger(site, cap, now_ledger.ai, after).committed_w  # stopping runs included
    return SiteDispatch(
        new_targets, states, fractions, preempt, shed, tuple(start), requeue, waiting_reasons, tuple(steps), committed, tuple(grow), grow_reasons, shrink,
        sum(max(0.0, new_targets[f] - held[f]) for f in new_targets),
    )


def _held_down(state: FleetState, now: float, emergency: bool) -> FleetState:
    """A fleet held at its floor by an emergency (its dwell restarts at every pass) or for want of
    a fresh price (it switches off once: prices back, it may run at once if it pays)."""
    return dataclasses.replace(state, running=False, since=now if emergency or state.running else state.since)
