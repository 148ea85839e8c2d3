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


def held_after_reading(held_w: float, sent_w: list[float], measured_w: float, acked_target_w: float) -> tuple[float, list[float]]:
    """`held` after a reading that the agent took while ramping to `acked_target_w`, and the
    targets still to confirm. `sent_w`: the targets sent since the last one a reading
    confirmed (that one first), oldest first, the latest last. The fleet heads to the
    acknowledged target, then to each target sent after it, in order, so it may draw at
    most the largest of its reading, that target and the later ones: a reading of an older
    target lowers `held` too, as far as the later targets allow (targets that move every
    pass would otherwise keep `held` at its peak, and a start waiting for that power would
    wait for as long as they move). A target not among `sent_w` changes nothing."""
    for index in range(len(sent_w) - 1, -1, -1):
        if abs(sent_w[index] - acked_target_w) <= TOLERANCE_W:
            return max(measured_w, *sent_w[index:]), sent_w[index:]
    return held_w, sent_w


def sent_after(sent_w: list[float], new_target_w: float, keep: int = 64) -> list[float]:
    """The targets to confirm once `new_target_w` is sent (at most `keep`, the oldest dropped:
    a reading of a dropped one then changes nothing, which is safe)."""
    return [*sent_w, new_target_w][-keep:]
