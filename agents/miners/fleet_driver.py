"""Mining fleets as the agent drives them: the interface every driver implements
(`FleetDriver`: real miners in agents/miners/driver.py), and `EmulatedFleets`, an
in-process driver whose power follows each target at the fleet's ramp rates.

The emulation stands in for real miners until they are driven through pyasic_rs:
each fleet's measured power moves toward its target with
`scheduler.core.power.ramp` on a monotonic clock, sampled on every read, on every
new target, and by `run()` every `period_s`. Fleets start paused: at their standby
draw, with their standby draw as target, until the scheduler sends targets.
Targets are clamped to what a fleet can draw (standby to all miners at rated power).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from scheduler.core.power import Fleet, ramp


class FleetDriver(Protocol):
    """What the agent needs of its miners; a real driver swaps in behind it."""

    fleets: dict[str, Fleet]

    def set_target(self, fleet_id: str, target_w: float) -> float:
        """Set a fleet's power target (W, whole fleet); returns the target applied."""
        ...

    def read(self) -> dict[str, tuple[float, float]]:
        """fleet_id -> (measured_w, target_w): what it draws now and the target it ramps to now."""
        ...

    async def run(self) -> None:
        """Keep readings fresh while the agent runs (poll miners, sample the model)."""
        ...


@dataclass
class _FleetState:
    measured_w: float
    target_w: float
    at: float


class EmulatedFleets:
    """A FleetDriver whose fleets follow their targets at their modelled ramp rates."""

    def __init__(self, fleets: Iterable[Fleet], clock: Callable[[], float] = time.monotonic, period_s: float = 0.5):
        self.fleets: dict[str, Fleet] = {f.fleet_id: f for f in fleets}
        self.clock = clock
        self.period_s = period_s
        now = clock()
        self._state = {f.fleet_id: _FleetState(f.standby_w, f.standby_w, now) for f in self.fleets.values()}

    def _sample(self) -> None:
        now = self.clock()
        for fleet_id, state in self._state.items():
            dt = max(0.0, now - state.at)
            if dt > 0:
                state.measured_w = ramp(self.fleets[fleet_id], state.measured_w, state.target_w, dt)
                state.at = now

    def set_target(self, fleet_id: str, target_w: float) -> float:
        fleet = self.fleets[fleet_id]  # KeyError: no such fleet
        self._sample()  # the old target holds up to now
        applied = min(fleet.max_w, max(fleet.standby_w, float(target_w)))
        self._state[fleet_id].target_w = applied
        return applied

    def read(self) -> dict[str, tuple[float, float]]:
        self._sample()
        return {fleet_id: (s.measured_w, s.target_w) for fleet_id, s in self._state.items()}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            self._sample()


def confirmed_targets(driver: FleetDriver) -> dict[str, float]:
    """The targets a driver's readings confirm: for real miners, only acknowledged ones;
    an in-process emulation follows its target at once, so its read() targets."""
    confirmed = getattr(driver, "confirmed_targets", None)
    return confirmed() if confirmed is not None else {f: t for f, (_, t) in driver.read().items()}
