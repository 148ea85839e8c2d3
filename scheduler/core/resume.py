"""Mining's way back after a cut: how much more it may draw at this moment.

When a cut ends (or prices turn, or AI frees power), mining does not come back as one
surge: a site's mining target rises by at most `resume_mw_per_min x resume_step_s`
at once, and then not again until `resume_step_s` have passed (staged, like Slurm's
ResumeRate or LuxOS's staged wake-up). Lowering is never limited. AI gets its power
back first, as before (dispatch.py): only mining's raises are paced.

Pure: `now` and the time of the site's last raise are inputs.
"""

from __future__ import annotations

import math

from scheduler.core.mining import MiningPolicy


def resume_room_w(policy: MiningPolicy, last_raise_at: float | None, now: float) -> float:
    """Meter watts mining may rise by in a pass at `now` (inf: no pacing configured)."""
    if policy.resume_mw_per_min <= 0:
        return math.inf
    if last_raise_at is not None and now - last_raise_at < policy.resume_step_s:
        return 0.0
    return policy.resume_mw_per_min * 1e6 / 60.0 * policy.resume_step_s
