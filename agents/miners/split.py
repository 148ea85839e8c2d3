"""How a power target is split over real miners. Pure: states in, settings out; no I/O.

Three decisions, each a function:

`split_group(miners, target_w)`: one setting per miner of a group (a rack, a
container) so that the group's total is at or under the target and as close to it as
the miners allow. A setting is *paused* (the model's standby draw) or *running*,
either at a power limit in [min_w, rated_w] (whole watts: Braiins OS takes integer
watts) or at stock (rated_w) for a miner that takes no power limit.

- Miners that do not answer, and miners that are stuck (see below), are never
  planned for: each is counted against the target at what it may be drawing
  (`MinerState.counted_w`: the larger of its last reading, rated power if it was
  never read, and the setting it was last sent: a miner that stops answering while
  it ramps up keeps ramping), so the plan stays under the target whatever they do.
- Running at a lower limit is preferred to pausing. Assumption (DOMAIN.md: "hashrate
  scales roughly with power within a model's tuning range"; ASICs are typically more
  efficient, in J/TH, at a lower voltage and frequency): a miner running at a lower
  limit keeps at least as much hashrate per watt as one at stock, and a paused miner
  still draws standby and earns nothing, so the fewest miners are paused. Those paused
  are the ones whose pause saves the most (miners that take no power limit first:
  they cannot run lower), then miners already paused (no churn), then by address.
- Every running miner that takes a power limit gets the same share of its tuning
  range (min_w + f x (rated_w - min_w)), which fills the target as closely as whole
  watts allow; miners that take no limit run at stock.
- If the target is below the group's floor (everything at its lowest setting, plus
  the miners counted as they are), every miner goes to its lowest setting and the
  plan says it does not fit.

`fast_cut(miners, target_w)`: the plan for a cut that must be met at once: the fewest
commands (pauses of the miners that save the most, everything else left as it is). A
group answers a cut with it and moves to `split_group`'s plan (more miners running at
lower limits) only once the target has held a while (agents.miners.group).

`split_fleet(groups, target_w)`: a fleet's target over its groups. Each group gets
its floor, and what is left is shared in proportion to each group's controllable
capacity above its floor (its answering, unstuck miners), up to each group's maximum.
Miners that are not answering or stuck raise their group's floor, so the other
groups' targets come down by that much: the fleet stays under its target.

Escalation: `find_stuck(progress, grace_s)` names the miners that did not reach their
setting: their last command failed, or a reading taken once the ramp time plus a
grace period had passed since it was sent still shows more than their setting. `escalate(miners,
target_w, stuck)` plans again with those miners counted as they are (never planned
for) and the others lowered to keep the group under its target, and lists them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scheduler.core.power import MinerModel

TOLERANCE_W = 1.0


def reach_tolerance_w(model: MinerModel) -> float:
    """How far above its setting a miner's reading may be and still count as there:
    power readings are estimates (Braiins OS: "approximated consumption")."""
    return max(50.0, 0.03 * model.rated_w)


@dataclass(frozen=True)
class MinerState:
    """What the split needs to know of one miner."""

    ip: str
    model: MinerModel
    takes_power_limit: bool  # the firmware sets a power limit (pyasic_rs supports_set_power_limit)
    can_pause: bool  # the firmware pauses and resumes (supports_pause and supports_resume)
    answering: bool = True
    last_w: float | None = None  # its last reading; None: never read
    stuck: bool = False
    paused_now: bool | None = None  # its setting now, if known (paused miners stay paused first)
    setting_w: float | None = None  # the power of the setting it was last sent, if any

    @property
    def plannable(self) -> bool:
        return self.answering and not self.stuck

    @property
    def counted_w(self) -> float:
        """What a miner that is not planned for is counted at, conservatively: the larger
        of its last reading (rated power if never read) and the setting it was last sent
        (it may still be ramping to it, or carry it out late)."""
        seen = self.last_w if self.last_w is not None else self.model.rated_w
        return seen if self.setting_w is None else max(seen, self.setting_w)

    @property
    def lowest_w(self) -> float:
        """Its lowest setting's power: standby if it pauses, else its lowest running power."""
        return self.model.standby_w if self.can_pause else self.running_min_w

    @property
    def running_min_w(self) -> float:
        return float(math.ceil(self.model.min_w)) if self.takes_power_limit else self.model.rated_w

    @property
    def running_max_w(self) -> float:
        return float(max(math.ceil(self.model.min_w), math.floor(self.model.rated_w))) if self.takes_power_limit else self.model.rated_w


@dataclass(frozen=True)
class Setting:
    """Paused, or running at `limit_w` (None: at stock, the miner takes no limit)."""

    paused: bool
    limit_w: float | None = None

    def power_w(self, model: MinerModel) -> float:
        if self.paused:
            return model.standby_w
        return self.limit_w if self.limit_w is not None else model.rated_w

    def same_as(self, other: Setting | None) -> bool:
        if other is None or self.paused != other.paused:
            return False
        if self.paused:
            return True
        if self.limit_w is None or other.limit_w is None:
            return self.limit_w is None and other.limit_w is None
        return abs(self.limit_w - other.limit_w) < TOLERANCE_W

    def describe(self) -> str:
        if self.paused:
            return "paused"
        return "running at stock" if self.limit_w is None else f"running at {self.limit_w:.0f} W"


@dataclass(frozen=True)
class GroupPlan:
    target_w: float
    settings: dict[str, Setting]  # planned miners only: ip -> setting
    planned_w: float  # the settings' power plus the miners counted as they are
    counted_w: dict[str, float]  # ip -> watts, for miners not planned for (not answering, stuck)
    floor_w: float  # the lowest the group can go now
    max_w: float  # the most it can draw now
    stuck: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return self.planned_w <= self.target_w + 1e-6

    def summary(self) -> dict:
        """Plain figures (JSON-able)."""
        paused = sum(1 for s in self.settings.values() if s.paused)
        return {
            "target_w": self.target_w,
            "planned_w": self.planned_w,
            "floor_w": self.floor_w,
            "max_w": self.max_w,
            "paused": paused,
            "running": len(self.settings) - paused,
            "fits": self.fits,
        }


@dataclass(frozen=True)
class GroupCapacity:
    """What a group can draw now: its floor (lowest settings plus miners counted as they
    are) and its maximum (every planned miner at its highest setting)."""

    floor_w: float
    max_w: float


def capacity(miners: Iterable[MinerState]) -> GroupCapacity:
    floor_w = max_w = 0.0
    for m in miners:
        if m.plannable:
            floor_w += m.lowest_w
            max_w += m.running_max_w
        else:
            floor_w += m.counted_w
            max_w += m.counted_w
    return GroupCapacity(floor_w, max_w)


def address_key(ip: str) -> tuple:
    """Addresses in numeric order (10.0.0.9 before 10.0.0.10); names after them."""
    try:
        return (0, int(ipaddress.ip_address(ip)), ip)
    except ValueError:
        return (1, 0, ip)


def _pause_order(m: MinerState) -> tuple:
    saving = m.running_min_w - m.model.standby_w
    return (-saving, 0 if m.paused_now else 1, address_key(m.ip))


def split_group(miners: Sequence[MinerState], target_w: float) -> GroupPlan:
    """One setting per planned miner; see the module docstring."""
    counted = {m.ip: m.counted_w for m in miners if not m.plannable}
    plannable = [m for m in miners if m.plannable]
    cap = capacity(miners)
    budget = target_w - sum(counted.values())

    running = {m.ip for m in plannable}
    min_total = sum(m.running_min_w for m in plannable)
    candidates = sorted((m for m in plannable if m.can_pause), key=_pause_order)
    paused: list[MinerState] = []
    for m in candidates:  # pause the fewest miners, biggest savings first
        if min_total <= budget + 1e-9:
            break
        running.discard(m.ip)
        paused.append(m)
        min_total -= m.running_min_w - m.model.standby_w
    # Pausing by the biggest saving may overshoot: run again any paused miner that fits,
    # while the running ones cannot fill the target by themselves.
    max_total = sum(m.running_max_w if m.ip in running else m.model.standby_w for m in plannable)
    for m in sorted(paused, key=lambda p: (p.running_min_w - p.model.standby_w, 0 if p.paused_now else 1, address_key(p.ip))):
        if max_total >= budget:
            break
        if min_total + (m.running_min_w - m.model.standby_w) <= budget + 1e-9:
            running.add(m.ip)
            min_total += m.running_min_w - m.model.standby_w
            max_total += m.running_max_w - m.model.standby_w

    tunable = [m for m in plannable if m.ip in running and m.takes_power_limit]
    span = sum(m.running_max_w - m.running_min_w for m in tunable)
    headroom = max(0.0, budget - min_total)
    share = 1.0 if span <= 0 else min(1.0, headroom / span)

    settings: dict[str, Setting] = {}
    for m in plannable:
        if m.ip not in running:
            settings[m.ip] = Setting(paused=True)
        elif m.takes_power_limit:
            limit = math.floor(m.running_min_w + share * (m.running_max_w - m.running_min_w) + 1e-9)
            settings[m.ip] = Setting(paused=False, limit_w=float(min(m.running_max_w, max(m.running_min_w, limit))))
        else:
            settings[m.ip] = Setting(paused=False)
    by_ip = {m.ip: m for m in plannable}
    planned = sum(s.power_w(by_ip[ip].model) for ip, s in settings.items()) + sum(counted.values())
    stuck = tuple(sorted((m.ip for m in miners if m.answering and m.stuck), key=address_key))
    return GroupPlan(target_w, settings, planned, counted, cap.floor_w, cap.max_w, stuck)


def present_w(m: MinerState) -> float:
    """What a planned miner draws, or ramps to, under the setting it has now: standby if
    paused, else its setting (its reading if it was never sent one: rated if never read)."""
    if m.paused_now:
        return m.model.standby_w
    if m.setting_w is not None:
        return m.setting_w
    return m.last_w if m.last_w is not None else m.model.rated_w


def fast_cut(miners: Sequence[MinerState], target_w: float) -> GroupPlan | None:
    """The plan that meets a lower target with the fewest commands: pause the running
    miners that save the most (present_w - standby) until the group is at or under the
    target, and leave every other miner as it is (not in `settings`: no command). None
    when the group is already at or under the target as things stand (not a cut), or
    when pausing every miner that can pause would not get it there (then
    `split_group`, which also lowers limits, is the plan)."""
    counted = {m.ip: m.counted_w for m in miners if not m.plannable}
    plannable = [m for m in miners if m.plannable]
    total = sum(present_w(m) for m in plannable) + sum(counted.values())
    if total <= target_w + TOLERANCE_W:
        return None
    settings: dict[str, Setting] = {}
    running = (m for m in plannable if m.can_pause and not m.paused_now)
    for m in sorted(running, key=lambda m: (-(present_w(m) - m.model.standby_w), address_key(m.ip))):
        if total <= target_w + 1e-9:
            break
        settings[m.ip] = Setting(paused=True)
        total -= present_w(m) - m.model.standby_w
    if total > target_w + 1e-9:
        return None
    cap = capacity(miners)
    stuck = tuple(sorted((m.ip for m in miners if m.answering and m.stuck), key=address_key))
    return GroupPlan(target_w, settings, total, counted, cap.floor_w, cap.max_w, stuck)


def keep_plan(miners: Sequence[MinerState], target_w: float) -> GroupPlan:
    """Every miner left at the setting it has (no command), with the figures as they stand."""
    counted = {m.ip: m.counted_w for m in miners if not m.plannable}
    planned = sum(present_w(m) for m in miners if m.plannable) + sum(counted.values())
    cap = capacity(miners)
    stuck = tuple(sorted((m.ip for m in miners if m.answering and m.stuck), key=address_key))
    return GroupPlan(target_w, {}, planned, counted, cap.floor_w, cap.max_w, stuck)


def split_fleet(groups: Mapping[str, GroupCapacity], target_w: float) -> dict[str, float]:
    """A fleet's target over its groups: floors first, the rest in proportion to the
    capacity above each floor (see the module docstring)."""
    floors = sum(g.floor_w for g in groups.values())
    spans = {gid: max(0.0, g.max_w - g.floor_w) for gid, g in groups.items()}
    total_span = sum(spans.values())
    left = target_w - floors
    if left <= 0 or total_span <= 0:
        return {gid: g.floor_w for gid, g in groups.items()}
    share = min(1.0, left / total_span)
    return {gid: g.floor_w + spans[gid] * share for gid, g in groups.items()}


@dataclass(frozen=True)
class MinerProgress:
    """One miner on its way to its setting, as the group last saw it."""

    ip: str
    model: MinerModel
    setting: Setting | None  # what it was last sent; None: nothing yet
    sent_at: float | None  # when (any monotonic clock)
    failed: bool  # the last command for it failed (refused, timed out, an error)
    answering: bool
    last_w: float | None
    read_at: float | None  # when `last_w` was read (the same clock as `sent_at`)


def find_stuck(progress: Iterable[MinerProgress], grace_s: float) -> list[str]:
    """Miners that did not reach their setting: the command failed, or a reading taken
    `ramp_down_s + grace_s` or more after it was sent is still above what the setting
    allows. Miners that do not answer are not stuck (they are reported as not answering)."""
    stuck = []
    for p in progress:
        if not p.answering or p.setting is None:
            continue
        if p.failed:
            stuck.append(p.ip)
            continue
        if p.sent_at is None or p.last_w is None or p.read_at is None or p.read_at < p.sent_at + p.model.ramp_down_s + grace_s:
            continue
        if p.last_w > p.setting.power_w(p.model) + reach_tolerance_w(p.model):
            stuck.append(p.ip)
    return sorted(stuck, key=address_key)


def escalate(miners: Sequence[MinerState], target_w: float, stuck: Iterable[str]) -> GroupPlan:
    """Plan again with the `stuck` miners counted as they are and the others lowered
    to keep the group under `target_w`; the plan lists the stuck miners."""
    stuck = set(stuck)
    return split_group([dataclasses.replace(m, stuck=True) if m.ip in stuck else m for m in miners], target_w)
