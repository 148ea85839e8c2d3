"""The physics of one emulated miner, pure: no clock, no sockets, no asyncio.

A miner has a power target it ramps toward and a measured power it draws now:

- mining, the target is its power limit (Braiins OS calls it the power target),
  clamped to what the model can be tuned to: [min_w, rated_w] (stock tune);
- paused, the target is the model's standby draw (DOMAIN.md: ~25 W asleep);
- the measured power moves toward the target no faster than the model's full swing
  per ramp time (`scheduler.core.power.ramp` on a one-miner `Fleet`; DOMAIN.md:
  down within 5 s, up within 10 s); tests shorten the ramps with `with_ramps`;
- hashrate follows the measured power along the model's efficiency, proportional
  above standby (`Fleet.hashrate_ths`, DOMAIN.md: "hashrate scales roughly with power").

Every method takes `now` (seconds on any monotonic clock) and first advances the
state to it, so a command applies from the moment it arrives.
"""

from __future__ import annotations

import dataclasses

from scheduler.core.power import Fleet, MinerModel, ramp


def with_ramps(model: MinerModel, ramp_down_s: float | None = None, ramp_up_s: float | None = None) -> MinerModel:
    """The model with other ramp times (tests use sub-second ramps)."""
    changes: dict[str, float] = {}
    if ramp_down_s is not None:
        changes["ramp_down_s"] = float(ramp_down_s)
    if ramp_up_s is not None:
        changes["ramp_up_s"] = float(ramp_up_s)
    return dataclasses.replace(model, **changes) if changes else model


def clamp_power_limit(model: MinerModel, watts: float) -> float:
    """A power limit as the miner applies it: within [min_w, rated_w]."""
    return min(model.rated_w, max(model.min_w, float(watts)))


class MinerPhysics:
    """One miner's power state; it starts settled at its target (measured = target)."""

    def __init__(self, model: MinerModel, now: float, power_limit_w: float | None = None, paused: bool = False) -> None:
        self.model = model
        self.now = now
        self.power_limit_w = model.rated_w if power_limit_w is None else clamp_power_limit(model, power_limit_w)
        self.paused = paused
        self._unit = Fleet("miner", model, 1)
        self.measured_w = self.target_w

    @property
    def target_w(self) -> float:
        """What the miner ramps toward now."""
        return self.model.standby_w if self.paused else self.power_limit_w

    def advance(self, now: float) -> None:
        """Move the measured power toward the target for the time since the last step."""
        dt = now - self.now
        if dt > 0:
            self.measured_w = ramp(self._unit, self.measured_w, self.target_w, dt)
            self.now = now

    def power_w(self, now: float) -> float:
        self.advance(now)
        return self.measured_w

    def hashrate_ths(self, now: float) -> float:
        """Hashrate at the power drawn now: zero at standby, the model's rating at rated_w."""
        self.advance(now)
        return self._unit.hashrate_ths(self.measured_w)

    def is_hashing(self, now: float) -> bool:
        return self.hashrate_ths(now) > 0.0

    def set_power_limit(self, watts: float, now: float) -> float:
        """Set the power limit (kept while paused); returns the limit applied."""
        self.advance(now)
        self.power_limit_w = clamp_power_limit(self.model, watts)
        return self.power_limit_w

    def pause(self, now: float) -> None:
        self.advance(now)
        self.paused = True

    def resume(self, now: float) -> None:
        self.advance(now)
        self.paused = False

    def settle_time_s(self) -> float:
        """Longest time any move between standby and rated power takes (for tests' waits)."""
        return max(self.model.ramp_down_s, self.model.ramp_up_s)
