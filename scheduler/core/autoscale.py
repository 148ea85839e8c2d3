"""Serve inference autoscaling: how many replicas a service wants for its demand.

Pure (no clock: `now` is an input). The rules:

- wanted = ceil(requests_per_s / target_rps_per_replica), clamped to the spec's
  [min_replicas, max_replicas] (a service without a target stays at its fewest).
- Up at once: demand above what the current replicas serve scales up on the first
  reading that shows it (GPUs and power permitting: see `within_gpus` and dispatch).
- Down only after a cool-down: demand must have wanted fewer replicas on every
  reading for `cooldown_s` (hysteresis), and the current size must be at least
  `cooldown_s` old; it then goes down to the most replicas demand wanted during that
  time, never below the fewest. So a size never shrinks sooner than `cooldown_s`
  after it was set, and never below what the last `cooldown_s` of demand needed.

The shell keeps the one piece of state between readings (`LowDemand`: since when
demand wanted fewer, and the most it wanted meanwhile); losing it (a restart) only
delays a scale-down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scheduler.core.jobs import JobSpec

DEFAULT_COOLDOWN_S = 30.0


@dataclass(frozen=True)
class ScalePolicy:
    cooldown_s: float = DEFAULT_COOLDOWN_S  # demand stays low this long before a scale-down


@dataclass(frozen=True)
class LowDemand:
    """Demand has wanted fewer replicas than the service has since `since`; `peak`
    is the most it wanted meanwhile."""

    since: float
    peak: int


@dataclass(frozen=True)
class ScaleDecision:
    replicas: int  # what the service should have now (== current: no change)
    low: LowDemand | None  # the state to keep for the next reading
    reason: str = ""


def wanted_replicas(spec: JobSpec, requests_per_s: float) -> int:
    """Replicas the demand needs, within the spec's bounds."""
    low, high = spec.replica_bounds
    target = spec.target_rps_per_replica
    if target <= 0 or requests_per_s <= 0:
        return low
    need = math.ceil(requests_per_s / target - 1e-9)
    return max(low, min(high, need))


def next_replicas(
    spec: JobSpec, current: int, requests_per_s: float, sized_at: float, low: LowDemand | None, now: float, policy: ScalePolicy = ScalePolicy()
) -> ScaleDecision:
    """The size a service should have after this reading of its demand.

    `current`: its replicas now; `sized_at`: when that size was set; `low`: the state
    the previous call returned (None at first)."""
    lowest, highest = spec.replica_bounds
    current = max(lowest, min(highest, current)) if current else lowest
    wanted = wanted_replicas(spec, requests_per_s)
    rate = f"{requests_per_s:.1f} req/s"
    if wanted > current:
        return ScaleDecision(wanted, None, f"demand {rate} needs {wanted} replicas at {spec.target_rps_per_replica:g} req/s each")
    if wanted == current:
        return ScaleDecision(current, None)
    low = LowDemand(now, wanted) if low is None else LowDemand(low.since, max(low.peak, wanted))
    if now - low.since >= policy.cooldown_s and now - sized_at >= policy.cooldown_s:
        target = max(lowest, low.peak)
        return ScaleDecision(target, None, f"demand stayed at or under {target} replicas' worth for {policy.cooldown_s:g}s (now {rate})")
    return ScaleDecision(current, low)


def within_gpus(current: int, wanted: int, gpus_per_replica: int, free_gpus: int) -> int:
    """A scale-up trimmed to the replicas the site's free GPUs can hold (never below `current`)."""
    if wanted <= current or gpus_per_replica <= 0:
        return wanted
    return current + min(wanted - current, max(0, free_gpus) // gpus_per_replica)
