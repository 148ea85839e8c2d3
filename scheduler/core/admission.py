"""Make room first, then start: how much power each mining fleet may still draw.

The scheduler cannot see a fleet's power between readings, so it keeps, per fleet,
the most the fleet may be drawing now (`held`), and dispatch counts the fleet at
that. Raising a target raises `held` at once (the fleet may ramp up to it); lowering
a target does not lower it: only a reading taken *after* the agent applied the new
target (it reports the target it ramps to) lowers `held`, to the larger of that
reading and the target. A fleet ramping down only goes down, so a run that needs
the power mining had starts after the agent confirmed the power is down, and
committed power stays under the cap through the transition, however late readings come.
"""

from __future__ import annotations

TOLERANCE_W = 1.0


def held_after_target(held_w: float, new_target_w: float) -> float:
    """`held` once a new target is sent."""
    return max(held_w, new_target_w)


def held_after_reading(held_w: float, target_w: float, measured_w: float, acked_target_w: float) -> float:
    """`held` after a reading that the agent took while ramping to `acked_target_w`;
    `target_w` is the latest target sent. A reading of an older target changes nothing."""
    if abs(acked_target_w - target_w) > TOLERANCE_W:
        return held_w
    return max(measured_w, target_w)
