"""Site power: what draws power at a site and the ledger invariant.

A site's grid interconnect has a cap (W at the meter). Everything IT draws (GPUs,
miners) is multiplied by the facility overhead factor of its cooling (air or
hydro/liquid; cooling power counts against the cap):

    committed = IT load x overhead <= cap        at every moment, transitions included.

Power figures of miners are the public specs in ../shared/DOMAIN.md (Antminer S19 XP
140 TH/s at 3,010 W; S21 200 TH/s at 3,500 W; SEALMINER A2 226 TH/s at ~3,730 W;
LuxOS-class curtailment: ~25 W asleep within 5 s, back within 10 s).

Two rules on fleets are written here once, for the scheduler and the agent alike:
`Fleet.whole_miners_w` (a fleet whose miners take no power limit runs whole miners,
so power above its paused floor is rounded down to whole miners) and
`curtail_least_efficient_first` (mining comes down highest J/TH first, each fleet no
lower than its paused floor, in whole miners where it must).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Cooling(enum.Enum):
    AIR = "air"
    HYDRO = "hydro"  # liquid / hydro cooling

    @property
    def default_overhead(self) -> float:
        """Facility power per unit of IT power (a PUE); typical public figures."""
        return {Cooling.AIR: 1.10, Cooling.HYDRO: 1.04}[self]


@dataclass(frozen=True)
class MinerModel:
    name: str
    rated_w: float  # power at the stock tune
    ths: float  # hashrate at rated_w, TH/s
    min_w: float  # lowest power it can be tuned to while hashing
    standby_w: float = 25.0  # draw while paused
    ramp_down_s: float = 5.0
    ramp_up_s: float = 10.0
    can_pause: bool = True
    takes_power_limit: bool = True

    @property
    def joules_per_th(self) -> float:
        return self.rated_w / self.ths

    def revenue_per_mwh(self, hashprice_usd_per_ph_day: float) -> float:
        """USD earned per MWh the miner draws: hashprice x PH/s / (MW x 24 h)."""
        return hashprice_usd_per_ph_day * (self.ths / 1000.0) / (self.rated_w / 1e6 * 24.0)


MINER_MODELS = {
    "S19XP": MinerModel("Antminer S19 XP", rated_w=3010, ths=140, min_w=2100),
    "S21": MinerModel("Antminer S21", rated_w=3500, ths=200, min_w=2400),
    "A2": MinerModel("SEALMINER A2", rated_w=3730, ths=226, min_w=2600),
}


@dataclass(frozen=True)
class Fleet:
    """Miners of one model at one site, driven as one unit with one power target."""

    fleet_id: str
    model: MinerModel
    count: int

    @property
    def max_w(self) -> float:
        return self.count * self.model.rated_w

    @property
    def standby_w(self) -> float:
        """What the whole fleet draws paused."""
        return self.count * self.model.standby_w

    @property
    def per_miner_w(self) -> float:
        """What one miner draws hashing at stock above what it draws paused."""
        return self.model.rated_w - self.model.standby_w

    def whole_miners_w(self, above_floor_w: float) -> float:
        """Power above the paused floor the fleet can really run at: all of it when its
        miners take a power limit, else rounded down to whole miners at stock."""
        if self.model.takes_power_limit:
            return above_floor_w
        return self.per_miner_w * math.floor(above_floor_w / self.per_miner_w + 1e-9)

    def hashrate_ths(self, power_w: float) -> float:
        """Hashrate at a fleet power: proportional above standby (DOMAIN.md: roughly linear)."""
        hashing_w = max(0.0, min(power_w, self.max_w) - self.standby_w)
        return self.count * self.model.ths * hashing_w / max(1e-9, self.max_w - self.standby_w)


@dataclass(frozen=True)
class SitePower:
    site_id: str
    cap_w: float  # grid interconnect cap at the meter
    overhead: float  # facility factor (>= 1): cooling and losses per unit of IT power
    fleets: tuple[Fleet, ...] = ()
    gpus: int = 0
    gpu_load_w: float = 1000.0  # per GPU at load, with its share of host and network
    gpu_idle_w: float = 150.0
    market_node: str = ""  # where its power price comes from
    meter_disagree_margin: float = 0.0  # the site reads a meter: alarm above this fraction (core/meter_check.py); 0: no meter

    def it_budget_w(self, cap_w: float | None = None) -> float:
        """The IT power the cap allows."""
        return (self.cap_w if cap_w is None else cap_w) / self.overhead

    def committed_w(self, it_w: float) -> float:
        return it_w * self.overhead

    def within_cap(self, it_w: float, cap_w: float | None = None, tolerance_w: float = 1e-6) -> bool:
        return self.committed_w(it_w) <= (self.cap_w if cap_w is None else cap_w) + tolerance_w

    @property
    def mining_floor_w(self) -> float:
        """IT power the miners draw even when every fleet is paused."""
        return sum(f.standby_w for f in self.fleets)

    @property
    def physical_floor_w(self) -> float:
        """Meter power the site draws with everything shed: idle GPUs, paused miners."""
        return (self.gpus * self.gpu_idle_w + self.mining_floor_w) * self.overhead

    def mining_headroom_w(self, ai_it_w: float, cap_w: float | None = None) -> float:
        """IT power mining may use above its paused floor, given the AI load."""
        return max(0.0, self.it_budget_w(cap_w) - ai_it_w - self.mining_floor_w)


def curtail_order(fleets: Iterable[Fleet]) -> list[Fleet]:
    """Fleets in the order mining gives way: least efficient (highest J/TH) first, then by id."""
    return sorted(fleets, key=lambda f: (-f.model.joules_per_th, f.fleet_id))


def curtail_least_efficient_first(
    fleets: Iterable[Fleet], levels_w: Mapping[str, float], excess_w: float, tolerance_w: float = 0.0, everything: bool = False
) -> tuple[dict[str, float], float]:
    """Lower the fleets' power (`levels_w`: fleet id -> W; a fleet not named is at its
    paused floor) by `excess_w` in all, least efficient first, none below its paused
    floor, fleets that take no power limit to whole miners; every fleet to its floor
    when `everything`. Excess and room within `tolerance_w` count as none. Returns the
    new level of each fleet lowered and the excess left (> 0: mining alone cannot cover it)."""
    lowered: dict[str, float] = {}
    for fleet in curtail_order(fleets):
        if not everything and excess_w <= tolerance_w:
            break
        level = levels_w.get(fleet.fleet_id, fleet.standby_w)
        room = level - fleet.standby_w
        if room <= tolerance_w:
            continue
        keep = 0.0 if everything else fleet.whole_miners_w(max(0.0, room - excess_w))
        cut = room - keep
        if cut <= 0:
            continue
        lowered[fleet.fleet_id] = level - cut
        excess_w -= cut
    return lowered, max(0.0, excess_w)


def ramp(fleet: Fleet, measured_w: float, target_w: float, dt_s: float) -> float:
    """A fleet's power `dt_s` after it was `measured_w` with `target_w` set: it moves
    toward the target no faster than its full swing per ramp time (down or up)."""
    swing = max(1e-9, fleet.max_w - fleet.standby_w)
    if target_w < measured_w:
        rate = swing / max(1e-9, fleet.model.ramp_down_s)
        return max(target_w, measured_w - rate * dt_s)
    rate = swing / max(1e-9, fleet.model.ramp_up_s)
    return min(target_w, measured_w + rate * dt_s)


def watts_text(watts: float) -> str:
    """Power for people: '12.500 MW' at site scale, '5.11 kW' below a megawatt."""
    if abs(watts) >= 1e6:
        return f"{watts / 1e6:.3f} MW"
    return f"{watts / 1e3:.2f} kW"
