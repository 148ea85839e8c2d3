"""The agent's FleetDriver over real miners: fleets of MinerGroups, driven directly.

`MinerFleets` implements `agents.miners.fleet_driver.FleetDriver` for the fleets whose site
config lists miner addresses (agents/site_config.py); `site_fleet_driver(config)`
builds the driver of a whole site: `EmulatedFleets` alone when no fleet lists
addresses (the agent behaves as before), `MinerFleets` alone when every fleet does,
and `CombinedFleets` over both when a site mixes them.

- `set_target(fleet_id, w)` clamps the target to what the fleet can draw (its standby
  to all miners at rated power, as `EmulatedFleets`), stores it and, once the groups
  are connected, applies it at once in a task of its own (fire and forget), so a
  curtailment never waits for the poll loop. The fleet target is split over the
  groups by `split.split_fleet` from each group's latest floor and maximum. Lower
  first across groups too: a group whose target rises keeps the one it was sent while
  another group of the fleet still reads above its target (at most the model's
  ramp_down_s + GRACE_S), so power moved between groups never goes up before it came
  down; the fleet's target counts as acknowledged only once no raise is held.
- `read()` returns the latest readings: per fleet the sum of its groups' measured
  power (a miner that does not answer counts at its last reading, rated power if
  never read; a group not read yet counts every miner at rated power) and the fleet
  target it ramps to. Until a target is set, the miners are left as they are and the
  target reported is the fleet's full power (they may be running at stock).
- `run()` connects every group (at most `groups_connecting` at a time: identification is
  several requests and a login per miner, and thousands at once on one agent machine
  time out together and start over), then every `poll_s` reads them all and applies every
  fleet's target again: groups send only what changed, the settings of miners that
  drifted or came back, and settings again to stuck miners; new floors (miners not
  answering or stuck) lower the other groups' targets (escalation across groups).
- `problems()` lists what needs a person, one line each, sorted: miners not
  answering, miners stuck, groups that cannot be reached, fleets that cannot get
  under their target. The agent turns new lines into LocalActions.
- `group_health()`: each group's health figures (temperatures, fans, hashboards,
  miners by operating state) from its latest read, for the agent's metrics.

A group is anything with the `GroupHandle` methods; `group_factory(group_id,
addresses, model)` makes them (with `auth=(username, password)` for a group whose
site config gives a login) (default: an in-process `MinerGroup`), so a group
hosted elsewhere (a Ray actor) can replace it. Every call to a group is bounded by
`call_timeout_s` (`connect_timeout_s` for connect); a group that fails a call keeps
its last figures and is reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agents.miners.fleet_driver import EmulatedFleets, FleetDriver, confirmed_targets
from agents.miners.split import GroupCapacity, reach_tolerance_w, split_fleet
from scheduler.core.power import Fleet, MinerModel, watts_text

if TYPE_CHECKING:
    from agents.site_config import SiteConfig

log = logging.getLogger(__name__)
TOLERANCE_W = 1.0
GRACE_S = 5.0  # past a fleet's ramp_down_s, raises held for a group still reading high go out anyway
LISTED_ADDRESSES = 8  # addresses named in a problem line; the rest are counted


class GroupHandle(Protocol):
    """What the driver needs of a group of miners (see agents.miners.group.MinerGroup)."""

    async def connect(self) -> dict: ...

    async def apply(self, target_w: float) -> dict: ...

    async def read(self) -> dict: ...


GroupFactory = Callable[..., GroupHandle]  # (group_id, addresses, model[, auth=(username, password)])


def in_process_group(group_id: str, addresses: list[str], model: MinerModel, auth: tuple[str, str] | None = None) -> GroupHandle:
    from agents.miners.group import MinerGroup

    return MinerGroup(group_id, addresses, model, auth=auth)


@dataclass(frozen=True)
class MinerFleetSpec:
    """A fleet of real miners: its model and count, and its groups' addresses."""

    fleet: Fleet
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (group_id, addresses)
    auth: tuple[tuple[str, tuple[str, str]], ...] = ()  # (group_id, (username, password)) of groups with a login


def _addresses(ips: Sequence[str]) -> str:
    shown = ", ".join(ips[:LISTED_ADDRESSES])
    return shown + (f", and {len(ips) - LISTED_ADDRESSES} more" if len(ips) > LISTED_ADDRESSES else "")


def _miners(n: int) -> str:
    return f"{n} miner" + ("" if n == 1 else "s")


class MinerFleets:
    """A FleetDriver over groups of real miners; see the module docstring."""

    def __init__(
        self,
        specs: Iterable[MinerFleetSpec],
        group_factory: GroupFactory = in_process_group,
        poll_s: float = 1.0,
        call_timeout_s: float = 30.0,
        connect_timeout_s: float = 300.0,
        groups_connecting: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.poll_s = poll_s
        self.call_timeout_s = call_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._connecting = asyncio.Semaphore(groups_connecting)
        self.clock = clock
        self.fleets: dict[str, Fleet] = {}
        self.groups: dict[str, dict[str, GroupHandle]] = {}  # fleet_id -> group_id -> group
        self._sizes: dict[str, int] = {}  # group_id -> miners
        self._models: dict[str, MinerModel] = {}
        for spec in specs:
            fleet = spec.fleet
            self.fleets[fleet.fleet_id] = fleet
            self.groups[fleet.fleet_id] = {}
            logins = dict(spec.auth)
            for group_id, addresses in spec.groups:
                extra = {"auth": logins[group_id]} if group_id in logins else {}  # factories without logins keep 3 arguments
                self.groups[fleet.fleet_id][group_id] = group_factory(group_id, list(addresses), fleet.model, **extra)
                self._sizes[group_id] = len(addresses)
                self._models[group_id] = fleet.model
        self._targets: dict[str, float | None] = {fleet_id: None for fleet_id in self.fleets}
        self._connected: dict[str, dict] = {}  # group_id -> connect result
        self._reads: dict[str, dict] = {}  # group_id -> latest read
        self._applied: dict[str, dict] = {}  # group_id -> latest apply result
        self._stuck: dict[str, list[str]] = {}  # group_id -> stuck addresses, from the latest read or apply
        self._errors: dict[str, dict[str, str]] = {}  # group_id -> call (connect, read, apply) -> why it fails
        self._tasks: set[asyncio.Task] = set()
        self._reconnecting: asyncio.Task | None = None
        # The target a fleet's readings may be reported against: one whose commands every
        # group acknowledged, once a poll begun after that has finished. Until then the
        # fleet reports its full power as its target, which confirms nothing to the
        # scheduler (docs/power.md: a reading confirms only the target it was taken at).
        self._confirmed: dict[str, float] = {f: fleet.max_w for f, fleet in self.fleets.items()}
        self._acked: dict[str, tuple[float, float]] = {}  # fleet -> (target, when its commands were all acknowledged)
        self._sent: dict[str, dict[str, float]] = {}  # fleet -> group -> the target it was last sent
        self._holding_since: dict[str, float] = {}  # fleet -> when its raises were first held back
        self.ready = False  # every group connected once

    # ------------------------------------------------------------- FleetDriver
    def set_target(self, fleet_id: str, target_w: float) -> float:
        fleet = self.fleets[fleet_id]  # KeyError: no such fleet
        applied = min(fleet.max_w, max(fleet.standby_w, float(target_w)))
        previous = self._targets[fleet_id]
        self._targets[fleet_id] = applied
        if self.ready and (previous is None or abs(previous - applied) > TOLERANCE_W):
            self._spawn(self._apply_fleet(fleet_id))
        return applied

    def read(self) -> dict[str, tuple[float, float]]:
        out = {}
        for fleet_id in self.fleets:
            measured = 0.0
            for group_id in self.groups[fleet_id]:
                figures = self._reads.get(group_id)
                measured += figures["measured_w"] if figures else self._sizes[group_id] * self._models[group_id].rated_w
            target = self._targets[fleet_id]
            out[fleet_id] = (measured, self.fleets[fleet_id].max_w if target is None else target)
        return out

    def confirmed_targets(self) -> dict[str, float]:
        """fleet -> the target its readings may be reported against (see `_confirmed`)."""
        return dict(self._confirmed)

    async def run(self) -> None:
        try:
            await self._connect_all()
            self.ready = True
            while True:
                started = self.clock()
                await self.poll_once()
                await asyncio.sleep(max(0.0, self.poll_s - (self.clock() - started)))
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close_groups()

    # ------------------------------------------------------------- the loop
    def _spawn(self, coro) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop running: run() applies it
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, group_id: str, what: str, awaitable, timeout_s: float) -> dict | None:
        try:
            result = await asyncio.wait_for(awaitable, timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            text = " ".join((str(err) or f"{type(err).__name__} after {timeout_s:g} s").split())[:300]
            failing = self._errors.setdefault(group_id, {})
            if what not in failing:  # logged once, when it starts failing; the first error names it until it ends
                log.warning("group %s: %s failed: %s", group_id, what, text)
                failing[what] = text
            return None
        failing = self._errors.get(group_id, {})
        if failing.pop(what, None) is not None:
            log.info("group %s: %s works again", group_id, what)
            if not failing:
                del self._errors[group_id]
        return result

    def _all_groups(self) -> list[tuple[str, str, GroupHandle]]:
        return [(fleet_id, group_id, group) for fleet_id, groups in self.groups.items() for group_id, group in groups.items()]

    async def _connect_all(self) -> None:
        pending = [(g, group) for _, g, group in self._all_groups() if g not in self._connected]
        async def connect(group_id: str, group: GroupHandle) -> dict | None:
            async with self._connecting:
                return await self._call(group_id, "connect", group.connect(), self.connect_timeout_s)

        results = await asyncio.gather(*(connect(g, group) for g, group in pending))
        for (group_id, _), result in zip(pending, results):
            if result is None:
                continue
            self._connected[group_id] = result
            found, missing = result.get("found", []), result.get("missing", [])
            log.info("group %s: %d of %d miners found%s", group_id, len(found), self._sizes[group_id], f"; missing: {_addresses(missing)}" if missing else "")

    async def poll_once(self) -> None:
        """Read every group, then apply every fleet's target again (what run() does each period)."""
        if len(self._connected) < len(self._sizes) and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = asyncio.create_task(self._connect_all())  # in the background: never holds up a poll
            self._tasks.add(self._reconnecting)
            self._reconnecting.add_done_callback(self._tasks.discard)
        groups = self._all_groups()
        poll_started = self.clock()
        results = await asyncio.gather(*(self._call(g, "read", group.read(), self.call_timeout_s) for _, g, group in groups))
        for (_, group_id, _), result in zip(groups, results):
            if result is not None:
                self._reads[group_id] = result
                self._stuck[group_id] = list(result.get("stuck", []))
        for fleet_id, (target, acked_at) in list(self._acked.items()):
            read_all = all(r is not None for (f, _, _), r in zip(groups, results) if f == fleet_id)
            if acked_at <= poll_started and read_all and self._targets[fleet_id] is not None and abs(self._targets[fleet_id] - target) <= TOLERANCE_W:
                self._confirmed[fleet_id] = target
        await asyncio.gather(*(self._apply_fleet(fleet_id) for fleet_id, target in self._targets.items() if target is not None))

    def capacities(self, fleet_id: str) -> dict[str, GroupCapacity]:
        """Each group's floor and maximum, from its latest reading (nominal until read)."""
        out = {}
        for group_id in self.groups[fleet_id]:
            figures = self._reads.get(group_id)
            if figures is not None and "floor_w" in figures and "max_w" in figures:
                out[group_id] = GroupCapacity(figures["floor_w"], figures["max_w"])
            else:
                model, n = self._models[group_id], self._sizes[group_id]
                out[group_id] = GroupCapacity(n * model.standby_w, n * model.rated_w)
        return out

    def group_targets(self, fleet_id: str) -> dict[str, float]:
        target = self._targets[fleet_id]
        if target is None:
            return {}
        return split_fleet(self.capacities(fleet_id), target)

    def _coming_down(self, fleet_id: str, targets: dict[str, float]) -> bool:
        """Whether a group of the fleet last read above its target (by more than its
        miners' reading tolerance): lowered, still on its way down."""
        for group_id, target in targets.items():
            figures = self._reads.get(group_id)
            if figures is not None and figures["measured_w"] > target + self._sizes[group_id] * reach_tolerance_w(self._models[group_id]):
                return True
        return False

    def _lower_first(self, fleet_id: str, targets: dict[str, float]) -> dict[str, float]:
        """Group targets with every raise held back (the group keeps the target it was
        sent) while another group of the fleet is still coming down, for at most the
        model's ramp_down_s plus the group's grace (GRACE_S) from the first hold: a split
        that moves power between groups never has the raised group up before the
        lowered one is down."""
        sent = self._sent.get(fleet_id, {})
        raising = {g for g, w in targets.items() if g in sent and w > sent[g] + TOLERANCE_W}
        if not raising or not self._coming_down(fleet_id, targets):
            self._holding_since.pop(fleet_id, None)
            return targets
        since = self._holding_since.setdefault(fleet_id, self.clock())
        if self.clock() - since >= self.fleets[fleet_id].model.ramp_down_s + GRACE_S:
            return targets
        return {g: (sent[g] if g in raising else w) for g, w in targets.items()}

    async def _apply_fleet(self, fleet_id: str) -> None:
        fleet_target = self._targets[fleet_id]
        wanted = self.group_targets(fleet_id)
        targets = self._lower_first(fleet_id, wanted)
        self._sent.setdefault(fleet_id, {}).update(targets)
        groups = self.groups[fleet_id]
        ids = list(targets)
        results = await asyncio.gather(*(self._call(g, "apply", groups[g].apply(targets[g]), self.call_timeout_s) for g in ids))
        for group_id, result in zip(ids, results):
            if result is None:
                continue
            self._applied[group_id] = result
            self._stuck[group_id] = list(result.get("stuck", []))
        acked = all(r is not None and all(a.get("ok") for a in r.get("acks", [])) for r in results)
        if fleet_target is not None and acked and len(ids) == len(groups) and targets == wanted:
            self._acked[fleet_id] = (fleet_target, self.clock())

    async def _close_groups(self) -> None:
        for _, _, group in self._all_groups():
            close = getattr(group, "close", None)
            if close is not None:
                try:
                    await asyncio.wait_for(close(), 5.0)
                except Exception:
                    pass

    # ------------------------------------------------------------- problems
    def problems(self) -> list[str]:
        lines = []
        for fleet_id, groups in self.groups.items():
            for group_id in groups:
                figures = self._reads.get(group_id)
                if figures is not None:
                    silent = list(figures.get("not_answering", []))
                else:
                    connected = self._connected.get(group_id, {})
                    silent = list(connected.get("missing", [])) + list(connected.get("not_answering", []))
                if silent:
                    lines.append(
                        f"{group_id}: {_miners(len(silent))} not answering ({_addresses(sorted(silent))}), each counted at its last reading or rated power"
                    )
                stuck = sorted(self._stuck.get(group_id, []))
                if stuck:
                    lines.append(
                        f"{group_id}: {_miners(len(stuck))} stuck, not reaching their setting ({_addresses(stuck)}); "
                        "counted as they draw, the other miners lowered to hold the target"
                    )
                failing = self._errors.get(group_id)
                if failing:
                    why = "; ".join(f"{what}: {text}" for what, text in sorted(failing.items()))
                    lines.append(f"{group_id}: the group does not answer ({why}); its last figures are kept")
            target = self._targets[fleet_id]
            if target is not None and self._reads:
                floor = sum(c.floor_w for c in self.capacities(fleet_id).values())
                if floor > target + TOLERANCE_W:
                    lines.append(f"{fleet_id}: target {watts_text(target)} is below what the fleet can get down to now ({watts_text(floor)})")
        return sorted(lines)

    def miner_health(self) -> dict[str, dict[str, int]]:
        """Miners per fleet: answering (and following their settings), not_answering, stuck
        (answering but not reaching their setting); from each group's latest read."""
        health: dict[str, dict[str, int]] = {}
        for fleet_id, groups in self.groups.items():
            counts = {"answering": 0, "not_answering": 0, "stuck": 0}
            for group_id in groups:
                figures = self._reads.get(group_id)
                if figures is not None:
                    silent = set(figures.get("not_answering", []))
                else:
                    connected = self._connected.get(group_id, {})
                    silent = set(connected.get("missing", [])) | set(connected.get("not_answering", []))
                stuck = set(self._stuck.get(group_id, [])) - silent
                counts["not_answering"] += len(silent)
                counts["stuck"] += len(stuck)
                counts["answering"] += max(0, self._sizes[group_id] - len(silent) - len(stuck))
            health[fleet_id] = counts
        return health

    def group_health(self) -> dict[str, dict]:
        """group_id -> its health figures (agents.miners.health.summarize) from its latest
        read, for the groups read so far."""
        return {group_id: figures["health"] for group_id, figures in sorted(self._reads.items()) if "health" in figures}

    def status(self) -> dict[str, Any]:
        """The latest figures of every group, as plain data (for logs and tests)."""
        return {
            "targets": dict(self._targets),
            "connected": dict(self._connected),
            "reads": dict(self._reads),
            "applied": dict(self._applied),
            "errors": {g: dict(e) for g, e in self._errors.items()},
        }


class CombinedFleets:
    """One FleetDriver over several (a site with real and emulated fleets)."""

    def __init__(self, drivers: Iterable[FleetDriver]) -> None:
        self.drivers = list(drivers)
        self.fleets: dict[str, Fleet] = {}
        self._owner: dict[str, FleetDriver] = {}
        for driver in self.drivers:
            for fleet_id, fleet in driver.fleets.items():
                self.fleets[fleet_id] = fleet
                self._owner[fleet_id] = driver

    def set_target(self, fleet_id: str, target_w: float) -> float:
        return self._owner[fleet_id].set_target(fleet_id, target_w)

    def read(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for driver in self.drivers:
            out.update(driver.read())
        return out

    def confirmed_targets(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for driver in self.drivers:
            out.update(confirmed_targets(driver))
        return out

    async def run(self) -> None:
        await asyncio.gather(*(driver.run() for driver in self.drivers))

    def problems(self) -> list[str]:
        return sorted(line for driver in self.drivers for line in (getattr(driver, "problems", None) or list)())

    def miner_health(self) -> dict[str, dict[str, int]]:
        return {fleet: counts for driver in self.drivers for fleet, counts in (getattr(driver, "miner_health", None) or dict)().items()}

    def group_health(self) -> dict[str, dict]:
        return {group: figures for driver in self.drivers for group, figures in (getattr(driver, "group_health", None) or dict)().items()}


def site_fleet_driver(config: SiteConfig, group_factory: GroupFactory = in_process_group, **options: Any) -> FleetDriver:
    """The FleetDriver of a site: real fleets through MinerFleets, the rest emulated."""
    real, emulated = [], []
    logins = config.miner_credentials()
    for fleet_config in config.fleets:
        groups = fleet_config.address_groups()
        if groups is None:
            emulated.append(fleet_config.fleet())
        else:
            auth = tuple((g, (logins[g].username, logins[g].password)) for g, _ in groups if g in logins)
            real.append(MinerFleetSpec(fleet_config.fleet(), tuple((g, tuple(addresses)) for g, addresses in groups), auth))
    if not real:
        return EmulatedFleets(emulated)
    miners = MinerFleets(real, group_factory, **{"poll_s": config.miner_poll_s, **options})
    return miners if not emulated else CombinedFleets([miners, EmulatedFleets(emulated)])
