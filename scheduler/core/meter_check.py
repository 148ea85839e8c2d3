"""The metered and the computed site power side by side: where a reading's meter figure
comes from (`MeterSource`), how far the two figures are apart, and when that is more
than the site's margin (the alarm). Pure: figures in, a verdict and a log line out.

A site with a revenue meter reports what the meter reads as its meter power (the cap is
kept against it) and the computed figure (IT power x overhead) beside it. The two
disagree when |metered - computed| / metered exceeds the site's `disagree_margin`
(agents/site_config.py: it is as good as that site's meter and overhead figure). A
meter reading 0 while the computed figure is above 0 disagrees by any margin. Only a
reading from the meter is judged: a computed or fallback figure agrees with itself.
"""

from __future__ import annotations

import math
from enum import IntEnum

from scheduler.core.power import watts_text


class MeterSource(IntEnum):
    """Where a reading's meter figure comes from (the wire's MeterSource values)."""

    COMPUTED = 1  # the site has no meter: IT power x overhead
    METER = 2  # read from the site's revenue meter
    FALLBACK = 3  # the site's meter does not answer: computed instead

    @classmethod
    def of(cls, value: int) -> MeterSource:
        """The source a wire value names; unknown or unset (an older agent): computed."""
        return cls(value) if value in cls._value2member_map_ else cls.COMPUTED


def disagreement(metered_w: float, computed_w: float) -> float:
    """|metered - computed| as a fraction of the metered figure (inf when the meter reads 0
    and the computed figure does not)."""
    if metered_w <= 0:
        return 0.0 if computed_w <= 0 else math.inf
    return abs(metered_w - computed_w) / metered_w


def disagrees(source: MeterSource, metered_w: float, computed_w: float, margin: float) -> bool:
    return source == MeterSource.METER and margin > 0 and disagreement(metered_w, computed_w) > margin


def check_meter(
    site_id: str, was: bool, source: MeterSource, metered_w: float, computed_w: float, margin: float
) -> tuple[bool, list[tuple[str, str, dict[str, str]]]]:
    """Whether the site's figures disagree now, and the log note (level, line, ids) when
    that changed: a warning when they start to, one line when they agree again."""
    now = disagrees(source, metered_w, computed_w, margin)
    if now == was:
        return now, []
    ids = {"site_id": site_id}
    if now:
        apart = disagreement(metered_w, computed_w)
        line = (
            f"site {site_id}: the meter reads {watts_text(metered_w)} but IT power x overhead gives {watts_text(computed_w)} "
            f"({apart:.1%} apart, margin {margin:.1%}): the cap is kept against the meter; check the meter's register map and the site's overhead"
        )
        return now, [("warning", line, ids)]
    why = "the meter no longer answers" if source == MeterSource.FALLBACK else f"within {margin:.1%}"
    return now, [("info", f"site {site_id}: meter and computed power agree again ({why})", ids)]
