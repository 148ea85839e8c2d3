"""Make room first, then start: admitting an AI run onto a site's power.

A run placed on a site may need power mining holds now. `admit` says which
mining targets must come down (least efficient fleets first) and whether the run
may start yet. The ledger counts a fleet at the larger of its target and its last
measured power, so a run only starts once the agent has confirmed the mining
power is down: committed power stays under the cap through the transition.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from scheduler.core.ladder import curtail_mining
from scheduler.core.ledger import AiClaim, SiteLedger


@dataclass(frozen=True)
class Admission:
    start_now: bool
    mining_targets_w: dict[str, float]  # lowered targets to send now (empty: none needed)
    reason: str


def admit(ledger: SiteLedger, claim: AiClaim) -> Admission:
    """Whether `claim` can start on `ledger` now, and what mining must give up first."""
    with_run = dataclasses.replace(ledger, ai=(*ledger.ai, claim))
    if with_run.within_cap:
        return Admission(True, {}, "power available")
    mining, _ = curtail_mining(with_run, ledger.cap_w, f"making room for {claim.job_id}")
    made_room = dataclasses.replace(with_run, mining_w=mining)
    if not made_room.within_cap:
        short = (made_room.committed_w - ledger.cap_w) / 1e6
        return Admission(False, {}, f"not enough power even with mining paused ({short:.2f} MW short)")
    lowered = {fleet_id: w for fleet_id, w in mining.items() if w < ledger.mining_w.get(fleet_id, float("inf"))}
    total = sum(mining.values()) / 1e6
    return Admission(False, lowered, f"waiting for mining to come down to {total:.2f} MW")


def confirm_mining(ledger: SiteLedger, measured_w: dict[str, float], targets_w: dict[str, float]) -> SiteLedger:
    """The ledger after an agent's report: each fleet counts max(target, measured)."""
    mining = {fleet_id: max(targets_w.get(fleet_id, w), w) for fleet_id, w in measured_w.items()}
    return dataclasses.replace(ledger, mining_w={**ledger.mining_w, **mining})
