"""Frequency response at the site, decided: when to pause the mining enrolled in the
program (trip) and when to give it back (restore). Pure: a frequency reading and the
time in, the new state and what to do out; no clock inside (agents/frequency_guard.py
polls the meter and acts).

- Trip: a reading below `trip_hz` (ERCOT's Responsive Reserve load resources trip on
  under-frequency relays at about 59.7 Hz, DOMAIN.md) while not tripped. Fast Frequency
  Response must deploy within 15 cycles (0.25 s): the agent acts at once, then reports.
- Hold: tripped, mining stays paused at least `hold_s` after the latest reading below
  `trip_hz` (a dip during the hold starts it again; FFR holds 15 minutes: 900 s).
- Restore: once held long enough and the frequency has read at or above `reset_hz`
  (above the trip: hysteresis) for `restore_s` without a break. A missing reading (the
  meter does not answer) never trips and never counts toward the restore.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum


@dataclass(frozen=True)
class Program:
    trip_hz: float = 59.7
    reset_hz: float = 59.9
    hold_s: float = 900.0
    restore_s: float = 30.0


@dataclass(frozen=True)
class ResponseState:
    tripped_at: float | None = None  # when mining was paused; None: mining as the scheduler says
    low_at: float = -math.inf  # the latest reading below the trip
    low_hz: float = math.inf  # the lowest frequency read since the trip
    reset_since: float | None = None  # readings at or above reset_hz without a break since then

    @property
    def tripped(self) -> bool:
        return self.tripped_at is not None


class Act(Enum):
    NONE = "none"
    TRIP = "trip"  # pause the enrolled mining now
    RESTORE = "restore"  # give it back to the scheduler's targets


def step(program: Program, state: ResponseState, hz: float | None, now: float) -> tuple[ResponseState, Act]:
    """The state after a frequency reading (None: no reading) at `now`, and what to do."""
    if hz is None or not math.isfinite(hz):
        return (replace(state, reset_since=None) if state.tripped else state), Act.NONE
    if hz < program.trip_hz:
        if not state.tripped:
            return ResponseState(tripped_at=now, low_at=now, low_hz=hz), Act.TRIP
        return replace(state, low_at=now, low_hz=min(state.low_hz, hz), reset_since=None), Act.NONE
    if not state.tripped:
        return state, Act.NONE
    if hz < program.reset_hz:
        return replace(state, reset_since=None), Act.NONE
    reset_since = state.reset_since if state.reset_since is not None else now
    if now - state.low_at >= program.hold_s and now - reset_since >= program.restore_s:
        return ResponseState(), Act.RESTORE
    return replace(state, reset_since=reset_since), Act.NONE
