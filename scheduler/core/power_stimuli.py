"""The stimuli the power state machine (power_state.py) takes, and what an agent's
heartbeat says about power (`PowerReading`): small frozen dataclasses, no behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.core import runs
from scheduler.core.grid import GridEvent
from scheduler.core.meter_check import MeterSource
from scheduler.core.power import SitePower


@dataclass(frozen=True)
class PowerReading:
    """What an agent's heartbeat says about power."""

    fleets: dict[str, tuple[float, float]]  # fleet_id -> (measured W, the target it ramps to)
    it_w: float
    gpu_w: float
    meter_w: float
    local_actions: tuple[tuple[float, str], ...] = ()
    active_runs: frozenset[str] = frozenset()
    computed_w: float = 0.0  # IT x overhead, beside a metered meter_w (core/meter_check.py)
    meter_source: MeterSource = MeterSource.COMPUTED


# ----------------------------------------------------------------- stimuli
@dataclass(frozen=True)
class SiteAttached:
    site_id: str
    power: SitePower | None  # None: the site does not manage power


@dataclass(frozen=True)
class SiteResized:
    site_id: str
    gpus: int


@dataclass(frozen=True)
class PowerRead:
    site_id: str
    reading: PowerReading


@dataclass(frozen=True)
class RunsReported:
    site_id: str
    reports: tuple[runs.RunReport, ...]


@dataclass(frozen=True)
class GridEventPosted:
    event: GridEvent
    known_sites: frozenset[str]
    by: str = ""  # who posted it (a modification's record line names them)


@dataclass(frozen=True)
class GridEventEnded:
    event_id: str
    end: float | None  # None: now
    reason: str  # by whom and why


@dataclass(frozen=True)
class DispatchDue:
    sweep: bool = False  # every managed site, not only those with news


@dataclass(frozen=True)
class ScalingDue:
    site_gpus: Mapping[str, int]  # site_id -> its GPUs (those no active run holds are free)


Stimulus = SiteAttached | SiteResized | PowerRead | RunsReported | GridEventPosted | GridEventEnded | DispatchDue | ScalingDue
