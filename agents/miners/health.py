"""Miners' health as a MinerGroup reads it through pyasic_rs: what one miner reports
(`MinerHealth`), when each miner is read (`HealthSchedule`) and a group's figures
(`summarize`).

Health is read far less often than wattage: each pyasic_rs call costs its caller
about 250-300 µs of CPU, so health never rides on the fast wattage poll. Each
miner's health (three calls: `get_fans`, `get_hashboards_no_chips`,
`get_operating_state`) is read once every `every_s`, and the miners of a group are
spread evenly over that interval (a miner's phase is its place in the group), so a
group of n miners costs n x 3 calls per `every_s`, a few at each wattage poll.

A group's figures (`summarize`, in `MinerGroup.read()` as "health"), over the miners
answering whose health was read (others are in neither the temperatures nor the fans):
- `max_board_temperature_c`, `max_chip_temperature_c`: the hottest board sensor and
  the hottest chip sensor (inlet or outlet) of any of them; None when none reports one;
- `min_fan_rpm`: the slowest fan of any of them (None: no fan reported);
- `hashboards_active`, `hashboards_expected`: boards that hash, of those the model has
  (pyasic_rs's `expected_hashboards`, or the boards reported if it knows none);
- `states`: every miner of the group by operating state, lower case (`mining`,
  `paused`, ...; pyasic_rs's `OperatingState` names: a paused VNish miner is
  `stopped`); `unknown` for a miner whose firmware reports none (LuxOS), whose health
  was not read yet, or that does not answer;
- `miners_read`: how many miners the figures cover.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

UNKNOWN = "unknown"


@dataclass(frozen=True)
class MinerHealth:
    """What one miner reported of its health at its latest health read."""

    board_c: float | None  # hottest board sensor
    chip_c: float | None  # hottest chip sensor
    min_fan_rpm: float | None
    boards_active: int
    boards_expected: int
    state: str  # lower-case operating state, or UNKNOWN


def state_name(state: Any) -> str:
    """pyasic_rs's OperatingState (e.g. `OperatingState.Mining()`) -> 'mining'; None -> 'unknown'."""
    if state is None:
        return UNKNOWN
    name = type(state).__name__
    if name in ("OperatingState", "object"):
        name = str(state)
    return name.strip().lower() or UNKNOWN


def _hottest(values: Iterable[Any]) -> float | None:
    found = [float(v) for v in values if v is not None]
    return max(found) if found else None


async def read_health(handle: Any) -> MinerHealth:
    """One miner's health: three pyasic_rs calls at once (the caller bounds them)."""
    fans, boards, state = await asyncio.gather(handle.get_fans(), handle.get_hashboards_no_chips(), handle.get_operating_state())
    boards = list(boards or [])
    rpms = [float(f.rpm) for f in fans or [] if getattr(f, "rpm", None) is not None]
    expected = getattr(handle, "expected_hashboards", None)
    return MinerHealth(
        board_c=_hottest(getattr(b, "board_temperature", None) for b in boards),
        chip_c=_hottest(t for b in boards for t in (getattr(b, "inlet_chip_temperature", None), getattr(b, "outlet_chip_temperature", None))),
        min_fan_rpm=min(rpms) if rpms else None,
        boards_active=sum(1 for b in boards if getattr(b, "active", False)),
        boards_expected=max(int(expected or 0), len(boards)),
        state=state_name(state),
    )


class HealthSchedule:
    """When each miner's health is read next: once every `every_s`, the miners of a group
    spread over the interval by their place in it."""

    def __init__(self, ips: list[str], every_s: float) -> None:
        if every_s <= 0:
            raise ValueError("health_every_s must be positive")
        self.every_s = float(every_s)
        n = max(1, len(ips))
        self._phase = {ip: i * self.every_s / n for i, ip in enumerate(ips)}
        self._due: dict[str, float] = {}

    def found(self, ip: str, now: float) -> None:
        """A miner was identified: its first health read is due at its phase from now."""
        self._due[ip] = now + self._phase[ip]

    def take_due(self, ips: Iterable[str], now: float) -> list[str]:
        """The miners due now (of those given), each moved on to its next read."""
        due = [ip for ip in ips if ip in self._due and self._due[ip] <= now]
        for ip in due:
            nxt = self._due[ip] + self.every_s
            self._due[ip] = nxt if nxt > now else now + self.every_s  # after a long gap: no burst to catch up
        return due


def summarize(healths: Iterable[tuple[bool, MinerHealth | None]]) -> dict:
    """A group's health figures from (answering, its latest health) per miner; see the module docstring."""
    states: Counter[str] = Counter()
    read: list[MinerHealth] = []
    for answering, h in healths:
        if answering and h is not None:
            read.append(h)
            states[h.state] += 1
        else:
            states[UNKNOWN] += 1
    return {
        "max_board_temperature_c": _hottest(h.board_c for h in read),
        "max_chip_temperature_c": _hottest(h.chip_c for h in read),
        "min_fan_rpm": min((h.min_fan_rpm for h in read if h.min_fan_rpm is not None), default=None),
        "hashboards_active": sum(h.boards_active for h in read),
        "hashboards_expected": sum(h.boards_expected for h in read),
        "states": dict(sorted(states.items())),
        "miners_read": len(read),
    }
