"""A site's power as people and dashboards see it (GetSite, ListSites, the snapshot the
live views stream, the metrics): computed by `PowerState.figures`, at the meter."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.core.meter_check import MeterSource, disagreement


@dataclass(frozen=True)
class SiteFigures:
    """A site's power for people and dashboards, at the meter."""

    cap_w: float  # the cap in force now
    interconnect_cap_w: float
    planned_cap_w: float  # what the last dispatch pass planned under
    committed_w: float
    measured_w: float
    ai_w: float
    mining_w: float
    mining_target_w: float
    price_usd_per_mwh: float
    emergency: bool
    fleets: tuple[tuple[str, float, float], ...]  # (fleet_id, measured IT W, target IT W)
    ladder_steps: dict[str, int]
    local_actions: int = 0
    ai_it_w: float = 0.0  # GPU IT power as read (no overhead)
    mining_it_w: float = 0.0  # mining IT power as read (no overhead)
    computed_w: float = 0.0  # IT x overhead: measured_w when the site has no meter (core/meter_check.py)
    meter_source: MeterSource = MeterSource.COMPUTED
    meter_disagrees: bool = False  # metered and computed apart by more than the site's margin

    @property
    def meter_disagreement(self) -> float:
        """|metered - computed| / metered; 0 unless the figure is the meter's."""
        return disagreement(self.measured_w, self.computed_w) if self.meter_source == MeterSource.METER else 0.0

    @property
    def overhead_w(self) -> float:
        """Meter power that is neither GPU nor mining IT: cooling, power conversion."""
        return max(0.0, self.measured_w - self.ai_it_w - self.mining_it_w)
