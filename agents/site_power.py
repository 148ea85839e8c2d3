"""The agent's power side: the site's profile, its fleets (a FleetDriver), its GPUs'
power model, the cap in force, and the actions the agent took by itself.

The session feeds it the scheduler's orders, as the core's plain types
(`SetMiningTargets`, `CapRunPower`), asks it for the power readings of each heartbeat
(`PowerReading`), and runs `tick()` every guard period whether the stream is up or not;
`tick()` applies `power_guard.hold_the_line` and records what it did as `LocalAction`s
until a heartbeat carries them to the scheduler. No protobuf here: agents/wire.py
turns these into the wire's messages.

With a meter in the site config (agents/meter.py) a reading's meter figure is what the
meter read, and the computed one (IT x overhead) goes beside it; while the meter does
not answer the computed figure stands in, marked FALLBACK (scheduler/core/meter_check.py).
`background()` lists what runs beside the guard: the driver's loop, the meter's and the
frequency response's (agents/frequency_guard.py). Frequency response pauses the enrolled
fleets by itself, at once (their targets go to standby through the driver); while it
holds, the scheduler's targets for them are kept aside and applied when it restores.

Fleets whose site config lists miner addresses are real miners, driven through
pyasic_rs (agents/miners/driver.py); the others are emulated (agents/miners/fleet_driver.py).
What the driver reports as needing a person (miners not answering or stuck) is
recorded as local actions, one line each time a problem appears or changes.

Every heartbeat reports, per fleet, the target the fleet ramps to *now*: the
scheduler takes a reading as confirming a lower target only when it names that
target (scheduler/core/admission.py).

The scheduler sends one dispatch pass's orders back to back (PowerTargets first,
then RunPowerCaps); for `ORDERS_SETTLE_S` after an order the guard waits while
connected, so that it never judges targets against GPU caps that are still on
their way. Cut off, nothing more can come, and the guard never waits.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass

from agents.frequency_guard import FrequencyGuard
from agents.gpu_power import GpuPower
from agents.meter import ModbusMeter
from agents.miners.fleet_driver import EmulatedFleets, FleetDriver, confirmed_targets
from agents.power_guard import TOLERANCE_W, FleetReading, GuardResult, hold_the_line
from agents.site_config import SiteConfig
from scheduler.core.decisions import CapRunPower, SetMiningTargets
from scheduler.core.meter_check import MeterSource
from scheduler.core.sites import GpuNode

log = logging.getLogger(__name__)
MAX_PENDING_ACTIONS = 1000
ORDERS_SETTLE_S = 0.25


@dataclass(frozen=True)
class FleetPower:
    fleet_id: str
    measured_w: float  # what the fleet draws now
    target_w: float  # the target a reading may confirm (see the module docstring)


@dataclass(frozen=True)
class PowerReading:
    """The site's power for a heartbeat: IT (GPUs and fleets), GPUs, and at the meter."""

    it_w: float
    gpu_w: float
    meter_w: float  # the meter's figure, or the computed one (meter_source)
    fleets: tuple[FleetPower, ...] = ()
    computed_w: float = 0.0  # IT x overhead
    meter_source: MeterSource = MeterSource.COMPUTED


@dataclass(frozen=True, eq=False)  # each action is itself: two alike are still two
class LocalAction:
    """Something the agent did by itself to hold the cap, or a problem it found."""

    at: float  # wall-clock epoch seconds
    what: str


def default_driver(config: SiteConfig) -> FleetDriver:
    """Emulated fleets unless the config lists miner addresses (then real ones, mixed)."""
    if not config.has_miner_addresses:
        return EmulatedFleets(config.fleet_models())
    from agents.miners.driver import site_fleet_driver  # pyasic_rs only where real miners are driven

    return site_fleet_driver(config)


class SitePowerControl:
    def __init__(
        self,
        config: SiteConfig,
        driver: FleetDriver | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        meter: ModbusMeter | None = None,
    ):
        self.config = config
        self.driver: FleetDriver = driver if driver is not None else default_driver(config)
        self.meter = meter if meter is not None or config.meter is None else ModbusMeter(config.meter)  # None: computed figures
        self.frequency: FrequencyGuard | None = None
        response = config.frequency_response
        if response is not None:
            # The frequency comes from its own device when the config names one, else from the meter.
            source = ModbusMeter(response.source.meter_config()) if response.source is not None else self.meter
            if source is not None:
                self.frequency = FrequencyGuard(response, source.read_frequency, self._trip, self._restore, clock, wall_clock)
        self.held_by_frequency: set[str] = set()  # fleets frequency response holds paused
        self._asked: dict[str, float] = {}  # their targets from the scheduler, kept aside while held
        self._report_now = False
        self.gpus = GpuPower(config.gpu_load_w, config.gpu_idle_w, config.gpu_backend)  # NVML or its fake (agents/gpu_power.py)
        self.cap_w = config.interconnect_cap_w  # until the scheduler says otherwise
        self.cap_event_active = False
        self.pending_actions: list[LocalAction] = []
        self.wall_clock = wall_clock
        self.clock = clock
        self._ramping: set[str] = set()
        self._orders_at = -math.inf
        self._problems: set[str] = set()  # the driver's problems already recorded
        self.guard_actions: collections.Counter = collections.Counter()  # why the guard acted by itself: stream_down, over_cap

    @property
    def overhead(self) -> float:
        return self.config.effective_overhead

    # ------------------------------------------------------------- registration
    def follow_nodes(self, gpu_nodes: Iterable[GpuNode]) -> None:
        """Tell the GPU model how many GPUs the site's nodes have now."""
        self.gpus.total_gpus = sum(n.gpus for n in gpu_nodes)

    # ------------------------------------------------------------- orders
    def apply_targets(self, order: SetMiningTargets) -> None:
        self._orders_at = self.clock()
        for fleet_id, target_w in order.targets_w.items():
            if fleet_id not in self.driver.fleets:
                log.warning("power targets name fleet %r, which this site does not have; ignored", fleet_id)
                continue
            if fleet_id in self.held_by_frequency:
                self._asked[fleet_id] = target_w  # applied when frequency response restores
                target_w = self.driver.fleets[fleet_id].standby_w
            applied = self.driver.set_target(fleet_id, target_w)
            if abs(applied - target_w) > TOLERANCE_W:
                log.warning("fleet %s: target %.0f W is outside what it can draw; %.0f W applied", fleet_id, target_w, applied)
        if order.cap_w > 0:
            self.cap_w = order.cap_w
        self.cap_event_active = order.cap_event_active
        log.info(
            "power targets applied (%s): %s; cap %.0f W%s",
            order.cause or "no cause given",
            ", ".join(f"{fleet_id}={target_w:.0f}W" for fleet_id, target_w in order.targets_w.items()) or "no fleets",
            self.cap_w,
            ", cap event active" if self.cap_event_active else "",
        )

    def cap_run(self, order: CapRunPower) -> None:
        applied = self.gpus.set_power_fraction(order.run_id, order.power_fraction)
        in_force = "no GPUs held yet" if applied is None else f"{applied:.0%} in force"
        log.info("run %s: GPU power capped to %.0f%% of load, %s (%s)", order.run_id, order.power_fraction * 100, in_force, order.cause or "no cause given")
        self._orders_at = self.clock()

    # ------------------------------------------------------------- readings
    def reading(self) -> PowerReading:
        """The site's power now, for a heartbeat (its runs and local actions are added
        when it is written to the stream)."""
        readings = self.driver.read()
        confirmed = confirmed_targets(self.driver)  # what each reading may confirm to the scheduler
        gpu_w = self.gpus.power_w()  # every device's NVML reading
        it_w = gpu_w + sum(measured for measured, _ in readings.values())
        fleets = tuple(FleetPower(f, m, confirmed.get(f, t)) for f, (m, t) in sorted(readings.items()))
        computed_w = it_w * self.overhead
        if self.meter is None:
            return PowerReading(it_w, gpu_w, computed_w, fleets, computed_w, MeterSource.COMPUTED)
        metered_w = self.meter.power_w()
        if metered_w is None:
            return PowerReading(it_w, gpu_w, computed_w, fleets, computed_w, MeterSource.FALLBACK)
        return PowerReading(it_w, gpu_w, metered_w, fleets, computed_w, MeterSource.METER)

    def background(self) -> list[Coroutine]:
        """What runs beside the guard while the agent runs: the fleets' driver, the meter, frequency response."""
        return [self.driver.run(), *(part.run() for part in (self.meter, self.frequency) if part is not None)]

    # ------------------------------------------------------------- frequency response
    def _trip(self, what: str) -> None:
        """Pause the enrolled fleets now (their targets to standby, sent by the driver at once)."""
        assert self.config.frequency_response is not None
        targets = {f: t for f, (_, t) in self.driver.read().items()}
        for fleet_id in self.config.frequency_response.fleets:
            self._asked.setdefault(fleet_id, targets[fleet_id])
            self.held_by_frequency.add(fleet_id)
            self.driver.set_target(fleet_id, self.driver.fleets[fleet_id].standby_w)
        log.warning("%s", what)
        self.record(what)
        self._report_now = True

    def _restore(self, what: str) -> None:
        """Give the enrolled fleets back the scheduler's targets."""
        for fleet_id in sorted(self.held_by_frequency):
            self.driver.set_target(fleet_id, self._asked.pop(fleet_id))
        self.held_by_frequency.clear()
        log.warning("%s", what)
        self.record(what)
        self._report_now = True

    # ------------------------------------------------------------- holding the line
    def tick(self, stream_up: bool, active_run_ids: Iterable[str], horizon_s: float = 0.0) -> tuple[GuardResult, bool]:
        """One guard pass; `horizon_s`: time to the next. Returns what the guard did and
        whether a heartbeat should go out now (it acted, or a fleet reached its target)."""
        readings = self.driver.read()
        result = GuardResult()
        if not (stream_up and self.clock() - self._orders_at < ORDERS_SETTLE_S):
            fleets = [FleetReading(self.driver.fleets[f], m, t) for f, (m, t) in readings.items()]
            gpu_w = self.gpus.power_w()
            metered_w = self.meter.power_w() if self.meter is not None else None  # None when stale or silent
            result = hold_the_line(self.cap_w, self.overhead, gpu_w, fleets, stream_up, self.cap_event_active, horizon_s, metered_w)
        for fleet_id, target_w in result.targets_w.items():
            self.driver.set_target(fleet_id, target_w)
        if result.acted:
            self.guard_actions["over_cap" if stream_up else "stream_down"] += 1
            log.warning("holding the line: %s", result.action)
            self.record(result.action)
        ramping = {f for f, (m, t) in readings.items() if abs(m - t) > TOLERANCE_W} | set(result.targets_w)
        settled = bool(self._ramping - ramping)
        self._ramping = ramping
        reported, self._report_now = self.report_problems() or self._report_now, False
        return result, result.acted or settled or reported

    def miner_health(self) -> dict[str, dict[str, int]]:
        """Miners per fleet by health (answering, not_answering, stuck), where the driver
        talks to real miners; emulated fleets have none to count."""
        health = getattr(self.driver, "miner_health", None)
        return health() if health is not None else {}

    def report_problems(self) -> bool:
        """Record the driver's new problem lines as local actions; True if any was new."""
        problems = getattr(self.driver, "problems", None)
        if problems is None:
            return False
        lines = problems()
        new = [line for line in lines if line not in self._problems]
        self._problems = set(lines)
        for line in new:
            log.warning("fleet problem: %s", line)
            self.record(line)
        return bool(new)

    def record(self, what: str) -> LocalAction:
        action = LocalAction(self.wall_clock(), what[:2000])
        self.pending_actions.append(action)
        del self.pending_actions[:-MAX_PENDING_ACTIONS]
        return action

    def reported(self, sent: Iterable[LocalAction]) -> None:
        """Drop the actions a heartbeat carried once it went out on a live stream."""
        sent_ids = {id(a) for a in sent}
        self.pending_actions = [a for a in self.pending_actions if id(a) not in sent_ids]
