"""The site's GPUs through NVML: a thin layer over the pynvml module interface that
works the same on the real library (`nvidia-ml-py`, import name `pynvml`) and on
agents/fake_nvml.py's FakeNvml, which has the same functions and errors.

It owns the unit conversion (NVML speaks milliwatts, the agent watts), the static
facts of each device (name, UUID, limit constraints, default limit, read once when
opened), and one rule for setting limits: a limit is clamped into the device's
[min, max] and sent only when it differs from the one in force. `read_only` makes
every Set refuse before it reaches NVML (scripts/gpu_check.py, the contract tests on
real GPUs). Errors are pynvml.NVMLError subclasses, as the library raises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pynvml

NVMLError = pynvml.NVMLError


@dataclass(frozen=True)
class GpuDevice:
    """What does not change while a device is open; limits in W (None: not supported)."""

    index: int
    name: str
    uuid: str
    min_limit_w: float | None
    max_limit_w: float | None
    default_limit_w: float | None

    @property
    def can_cap(self) -> bool:
        return None not in (self.min_limit_w, self.max_limit_w, self.default_limit_w)

    def clamp_w(self, watts: float) -> float:
        """`watts` within the device's limit constraints, in whole milliwatts."""
        assert self.min_limit_w is not None and self.max_limit_w is not None
        return round(min(self.max_limit_w, max(self.min_limit_w, watts)) * 1000) / 1000


class ReadOnlyError(PermissionError):
    """A Set was asked of an NvmlGpus opened read-only."""


class NvmlGpus:
    """The devices one NVML (real or fake) shows; indices are NVML's."""

    def __init__(self, nvml: ModuleType | Any = None, read_only: bool = False):
        self.nvml = nvml if nvml is not None else pynvml
        self.read_only = read_only
        self.devices: list[GpuDevice] = []
        self._handles: list[Any] = []
        self._open = False

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> NvmlGpus:
        """nvmlInit and read every device's static facts (NVMLError if NVML cannot start)."""
        self.nvml.nvmlInit()
        self._open = True
        try:
            self.refresh()
        except Exception:
            self.close()
            raise
        return self

    def refresh(self) -> None:
        """Enumerate the devices again (a fake may have grown or shrunk)."""
        n = self.nvml
        handles = [n.nvmlDeviceGetHandleByIndex(i) for i in range(n.nvmlDeviceGetCount())]
        devices = []
        for index, handle in enumerate(handles):
            try:
                low, high = n.nvmlDeviceGetPowerManagementLimitConstraints(handle)
                default = n.nvmlDeviceGetPowerManagementDefaultLimit(handle)
                limits: tuple[float | None, ...] = (low / 1000, high / 1000, default / 1000)
            except NVMLError:  # e.g. NOT_SUPPORTED: the device cannot be power-capped
                limits = (None, None, None)
            devices.append(GpuDevice(index, str(n.nvmlDeviceGetName(handle)), str(n.nvmlDeviceGetUUID(handle)), *limits))
        self._handles, self.devices = handles, devices

    def close(self) -> None:
        if self._open:
            self._open = False
            self.nvml.nvmlShutdown()

    @property
    def count(self) -> int:
        return len(self.devices)

    # ------------------------------------------------------------------ readings
    def power_w(self, index: int) -> float:
        return self.nvml.nvmlDeviceGetPowerUsage(self._handles[index]) / 1000

    def limit_w(self, index: int) -> float:
        return self.nvml.nvmlDeviceGetPowerManagementLimit(self._handles[index]) / 1000

    def enforced_limit_w(self, index: int) -> float:
        return self.nvml.nvmlDeviceGetEnforcedPowerLimit(self._handles[index]) / 1000

    # ------------------------------------------------------------------ limits
    def set_limit_w(self, index: int, watts: float) -> float:
        """Set a device's power limit, clamped into its constraints; returns the limit in
        force after. Sends nothing when that limit is already in force."""
        device = self.devices[index]
        if not device.can_cap:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        wanted = device.clamp_w(watts)
        if abs(self.limit_w(index) - wanted) < 0.0005:
            return wanted
        if self.read_only:
            raise ReadOnlyError(f"GPU {index} ({device.uuid}): NVML opened read-only; limit {wanted:.0f} W not set")
        self.nvml.nvmlDeviceSetPowerManagementLimit(self._handles[index], round(wanted * 1000))
        return self.limit_w(index)

    def restore_default(self, index: int) -> float:
        default = self.devices[index].default_limit_w
        if default is None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self.set_limit_w(index, default)


def open_nvml(nvml: ModuleType | Any = None, read_only: bool = False) -> tuple[NvmlGpus | None, str]:
    """An opened NvmlGpus, or None and why NVML cannot start here (no driver, no library)."""
    gpus = NvmlGpus(nvml, read_only)
    try:
        return gpus.open(), ""
    except NVMLError as err:
        return None, f"NVML unavailable: {err}"
    except OSError as err:  # a broken library install
        return None, f"NVML unavailable: {err}"
