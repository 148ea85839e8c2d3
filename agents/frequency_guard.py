"""Frequency response at the site, carried out: poll the frequency fast, decide with
agents/frequency_response.py, and pause (or give back) the enrolled fleets at once,
locally, never waiting for the scheduler.

`FrequencyGuard.run()` reads the frequency every `poll_s` (`read_hz`: the meter's
frequency register, agents/meter.py) and hands each reading to `decide`, which calls
`on_trip(text)` or `on_restore(text)` when the program says so; the owner
(agents/site_power.py) sets the fleets' targets through the miner driver at once and
records the text as a LocalAction, which the next heartbeat carries to the scheduler.
What it keeps for the metrics and the benchmarks: the latest frequency, how many
trips, and the wall-clock time of the latest trip decision.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from agents.frequency_response import Act, Program, ResponseState, step
from agents.site_config import FrequencyResponseConfig

log = logging.getLogger(__name__)


class FrequencyGuard:
    def __init__(
        self,
        config: FrequencyResponseConfig,
        read_hz: Callable[[], Awaitable[float | None]],
        on_trip: Callable[[str], None],
        on_restore: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.program = Program(config.trip_hz, config.reset_hz, config.hold_s, config.restore_s)
        self.read_hz, self.on_trip, self.on_restore = read_hz, on_trip, on_restore
        self.clock, self.wall_clock = clock, wall_clock
        self.state = ResponseState()
        self.hz: float | None = None  # the latest reading
        self.trips = 0
        self.tripped_wall = 0.0  # wall-clock time of the latest trip decision

    @property
    def holding(self) -> bool:
        return self.state.tripped

    def decide(self, hz: float | None, now: float) -> Act:
        """Feed one reading (None: none) taken at `now` (monotonic); act on the result."""
        if hz is not None:
            self.hz = hz
        low_hz = self.state.low_hz
        self.state, act = step(self.program, self.state, hz, now)
        fleets = ", ".join(self.config.fleets)
        if act == Act.TRIP:
            self.trips += 1
            self.tripped_wall = self.wall_clock()
            self.on_trip(
                f"under-frequency: {hz:.3f} Hz, below the trip {self.program.trip_hz:g} Hz: enrolled mining paused by the agent ({fleets}); "
                f"held at least {self.program.hold_s:g} s"
            )
        elif act == Act.RESTORE:
            lowest = f"lowest {low_hz:.3f} Hz" if math.isfinite(low_hz) else "no reading below the trip"
            self.on_restore(
                f"frequency restored: {hz:.3f} Hz, at or above {self.program.reset_hz:g} Hz for {self.program.restore_s:g} s after the hold ({lowest}): "
                f"enrolled mining ({fleets}) back to the scheduler's targets"
            )
        return act

    async def run(self) -> None:
        """Poll every `poll_s` until cancelled; a pass that fails is logged and the next one goes on."""
        period = self.config.poll_s
        while True:
            started = self.clock()
            try:
                hz = await self.read_hz()
                self.decide(hz, self.clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("frequency response pass failed")
            await asyncio.sleep(max(0.0, period - (self.clock() - started)))
