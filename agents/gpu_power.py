"""The site's GPU power: which devices each run holds, their NVML power limits, and
what they draw, read through agents/nvml.py from the real NVML or from the fake one.

Backend (`gpu_backend` in the site config): `nvml` opens the real library at once
(GpuBackendError, one line, when it cannot start); `fake` emulates the site's GPUs
(agents/fake_nvml.py: default and max limit = gpu_load_w, idle draw = gpu_idle_w, min
limit = fake_nvml.MIN_LIMIT_FRACTION of the max); `auto` (the default) decides when
Ray's inventory gives the site's GPU count (`total_gpus`): real NVML if it starts and
this host has exactly that many devices (the agent can only reach its own host's
GPUs), else the fake with that many devices.

Devices are allocated to a run when it is added (`add_run`, at its start or when the
agent finds it on Ray after a restart): the lowest free indices. A run's power cap
(RunPowerCap) sets each of its devices' limit to fraction x default limit, clamped to
the device's [min, max]; fraction 1.0, or the run ending (`forget`), restores the
default. A cap that comes before the run is kept and applied at allocation. The agent
sets a limit only after the scheduler capped a run, and afterwards only to put the
default back: a device it never capped keeps whatever limit it had (so a limit left
by an earlier agent process stays until a cap and its end pass over that device).
With the fake, a run's devices are busy while it holds them.

The heartbeat's GPU power is the sum of every device's NVML reading. With the fake it
keeps the ledger's contract (scheduler/core/ledger.py):

    GPU IT power = all GPUs x gpu_idle_w + for each active run: gpus x (gpu_load_w x fraction - gpu_idle_w)

with the fraction clamped to [max(gpu_idle_w / gpu_load_w, MIN_LIMIT_FRACTION), 1]: no
GPU is capped below its lowest limit, and the applied fraction is what `set_power_fraction`
returns. The ladder never asks for less than about 0.59 (a 50 % slowdown tolerance on
the speed curve: ledger.power_fraction_for_slowdown).
A device whose reading fails counts at its last reading (its default limit if none).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from agents.fake_nvml import FakeNvml
from agents.nvml import NVMLError, NvmlGpus, ReadOnlyError, open_nvml

log = logging.getLogger(__name__)
BACKENDS = ("auto", "nvml", "fake")


class GpuBackendError(RuntimeError):
    """The configured GPU backend cannot be used; the message is one line."""


def gpu_it_power_w(total_gpus: int, gpu_load_w: float, gpu_idle_w: float, runs: Iterable[tuple[int, float]]) -> float:
    """The ledger's GPU IT power: `runs` are (gpus, power_fraction) of the active runs."""
    lowest = gpu_idle_w / gpu_load_w if gpu_load_w > 0 else 0.0
    power = max(0, total_gpus) * gpu_idle_w
    for gpus, fraction in runs:
        fraction = min(1.0, max(lowest, fraction))
        power += max(0, gpus) * (gpu_load_w * fraction - gpu_idle_w)
    return power


class GpuPower:
    """One site's GPU devices, the runs holding them and their power caps."""

    def __init__(
        self,
        gpu_load_w: float,
        gpu_idle_w: float,
        backend: str = "auto",
        nvml: Any = None,
        fake: FakeNvml | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`nvml`: the real library's module (default pynvml; tests pass a FakeNvml
        standing in for hardware); `fake`: the emulation to use when emulating."""
        if backend not in BACKENDS:
            raise GpuBackendError(f"gpu_backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.gpu_load_w, self.gpu_idle_w = gpu_load_w, gpu_idle_w
        self.setting = backend
        self._real_module = nvml
        self._fake = fake if fake is not None else FakeNvml.for_site(0, gpu_load_w, gpu_idle_w, clock=clock)
        self.gpus: NvmlGpus | None = None  # None until the backend is chosen
        self.backend = ""  # "nvml" or "fake" once chosen
        self._total = 0
        self.run_gpus: dict[str, int] = {}  # run -> GPUs it needs
        self.fractions: dict[str, float] = {}  # run -> power fraction ordered
        self.devices_of: dict[str, list[int]] = {}  # run -> device indices it holds
        self._last_w: dict[int, float] = {}
        self._capped: set[int] = set()  # devices whose limit this agent lowered
        self._short: dict[str, int] = {}  # run -> devices it lacks (logged once per change)
        self._failing: set[int] = set()
        if backend == "nvml":
            gpus, why = open_nvml(nvml)
            if gpus is None:
                raise GpuBackendError(f"gpu_backend is nvml but {why}")
            self._use(gpus, "nvml")
        elif backend == "fake":
            self._use(NvmlGpus(self._fake).open(), "fake")

    # ------------------------------------------------------------------ backend
    @property
    def total_gpus(self) -> int:
        return self._total

    @total_gpus.setter
    def total_gpus(self, count: int) -> None:
        """The site's GPU count from Ray's inventory (at every Register)."""
        self._total = max(0, int(count))
        if self.gpus is None:
            self._choose(self._total)
        elif self.backend == "fake":
            self._fake.resize(self._total)
            self.gpus.refresh()
            for run_id, indices in self.devices_of.items():
                self.devices_of[run_id] = [i for i in indices if i < self.gpus.count]
            self._capped &= set(range(self.gpus.count))
        elif self.gpus.count != self._total:
            log.warning("NVML shows %d GPUs on this host, Ray %d for the site: only this host's are read and capped", self.gpus.count, self._total)
        self._allocate()

    def _choose(self, count: int) -> None:
        if self.setting == "auto":
            real, why = open_nvml(self._real_module)
            if real is not None and real.count == count and count > 0:
                self._use(real, "nvml")
                return
            if real is not None:
                why = f"NVML shows {real.count} GPUs on this host but Ray {count} for the site"
                real.close()
            log.info("GPU power emulated (fake NVML, %d GPUs): %s", count, why)
        self._fake.resize(count)
        self._use(NvmlGpus(self._fake).open(), "fake")

    def _use(self, gpus: NvmlGpus, backend: str) -> None:
        self.gpus, self.backend = gpus, backend
        if backend == "nvml":
            names = sorted({d.name for d in gpus.devices})
            log.info("GPU power through NVML: %d device(s) (%s)", gpus.count, ", ".join(names) or "none")

    def close(self) -> None:
        if self.gpus is not None:
            self.gpus.close()

    # ------------------------------------------------------------------ runs
    def add_run(self, run_id: str, gpus: int) -> None:
        """A run starts (or was found on Ray): give it devices, capped as ordered."""
        self.run_gpus[run_id] = max(0, int(gpus))
        self._allocate()

    def set_power_fraction(self, run_id: str, fraction: float) -> float | None:
        """Cap a run's GPUs (kept if the run is not known yet: its start may follow).
        Returns the fraction applied (limit in force / default, the mean over its
        devices), None while the run holds no device."""
        self.fractions[run_id] = fraction
        indices = self.devices_of.get(run_id, [])
        return self._apply(run_id, indices) if indices else None

    def forget(self, run_id: str) -> None:
        """The run ended: its devices get their default limit back and are free again."""
        self._release(self.devices_of.pop(run_id, []))
        self.run_gpus.pop(run_id, None)
        self.fractions.pop(run_id, None)
        self._short.pop(run_id, None)
        self._allocate()  # a run still short of devices may take them

    def _allocate(self) -> None:
        if self.gpus is None:
            return
        held = {i for indices in self.devices_of.values() for i in indices}
        free = [i for i in range(self.gpus.count) if i not in held]
        for run_id, wanted in self.run_gpus.items():
            have = self.devices_of.setdefault(run_id, [])
            if len(have) > wanted:
                self._release(have[wanted:])
                free = sorted(free + have[wanted:])
                del have[wanted:]
            new, free = free[: wanted - len(have)], free[wanted - len(have) :]
            if new:
                have.extend(new)
                self._busy(new, True)
                self._apply(run_id, new)
            short = wanted - len(have)
            if short != self._short.get(run_id, 0):
                if short > 0:
                    log.warning("run %s needs %d GPUs but holds %d: no free device for the rest", run_id, wanted, len(have))
                self._short[run_id] = short

    def _apply(self, run_id: str, indices: list[int]) -> float:
        """Set the run's limits on `indices`; the fraction in force, averaged."""
        assert self.gpus is not None
        fraction = self.fractions.get(run_id, 1.0)
        applied = []
        for i in indices:
            device = self.gpus.devices[i]
            if not device.can_cap:
                log.warning("run %s: GPU %d (%s) cannot be power-capped", run_id, i, device.uuid)
                continue
            assert device.default_limit_w is not None
            if fraction >= 1.0 and i not in self._capped:
                applied.append(self._limit_or_default(i) / device.default_limit_w)
                continue  # never capped by us: left as it is
            target = device.default_limit_w if fraction >= 1.0 else fraction * device.default_limit_w
            try:
                limit = self.gpus.set_limit_w(i, target)
            except (NVMLError, ReadOnlyError) as err:
                log.warning("run %s: power limit %.0f W on GPU %d not set: %s", run_id, target, i, err)
                limit = self._limit_or_default(i)
            if fraction < 1.0:
                self._capped.add(i)
            elif abs(limit - device.default_limit_w) < 0.0005:
                self._capped.discard(i)
            applied.append(limit / device.default_limit_w)
        result = sum(applied) / len(applied) if applied else 1.0
        if abs(result - min(1.0, fraction)) > 0.005:
            log.warning("run %s: GPU power %.0f%% of default ordered, %.0f%% applied (the GPUs' limits)", run_id, fraction * 100, result * 100)
        return result

    def _release(self, indices: list[int]) -> None:
        assert self.gpus is not None or not indices
        for i in indices:
            device = self.gpus.devices[i] if self.gpus and i < self.gpus.count else None
            if device is None:
                continue
            if device.can_cap and i in self._capped:
                try:
                    self.gpus.restore_default(i)
                    self._capped.discard(i)
                except (NVMLError, ReadOnlyError) as err:
                    log.warning("GPU %d: default power limit not restored: %s", i, err)
            self._busy([i], False)

    def _busy(self, indices: list[int], busy: bool) -> None:
        if self.backend == "fake":
            for i in indices:
                self._fake.set_busy(i, busy)

    def _limit_or_default(self, index: int) -> float:
        assert self.gpus is not None
        try:
            return self.gpus.limit_w(index)
        except NVMLError:
            return self.gpus.devices[index].default_limit_w or self.gpu_load_w

    # ------------------------------------------------------------------ readings
    def power_w(self) -> float:
        """What every device draws now, in W (the heartbeat's gpu_power_w)."""
        if self.gpus is None:
            return 0.0
        total = 0.0
        for i, device in enumerate(self.gpus.devices):
            try:
                watts = self.gpus.power_w(i)
            except NVMLError as err:
                if i not in self._failing:
                    log.warning("GPU %d (%s): power reading failed (%s); counted at its last reading", i, device.uuid, err)
                    self._failing.add(i)
                watts = self._last_w.get(i, device.default_limit_w or self.gpu_load_w)
            else:
                self._failing.discard(i)
                self._last_w[i] = watts
            total += watts
        return total

    def devices(self) -> list[tuple[int, str, float, float]]:
        """(index, name, last power reading W, power limit W) of every device, for the metrics
        (readings as the heartbeat took them last; limits read now)."""
        if self.gpus is None:
            return []
        return [(i, d.name, self._last_w.get(i, 0.0), self._limit_or_default(i)) for i, d in enumerate(self.gpus.devices)]

    def describe(self) -> str:
        if self.gpus is None:
            return f"GPU backend {self.setting}: not chosen yet"
        return f"{'NVML' if self.backend == 'nvml' else 'fake NVML'}, {self.gpus.count} GPUs, {len(self.devices_of)} runs holding devices"
