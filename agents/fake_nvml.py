"""A fake NVML for machines without NVIDIA GPUs: a module-like object with the pynvml
functions the agent uses (agents/nvml.py), the same arguments, units (milliwatts) and
errors (pynvml.NVMLError subclasses with the real codes), over emulated devices.

What it honours, as the real library does:
- nvmlInit / nvmlShutdown are reference-counted; every device call before nvmlInit (or
  after the last nvmlShutdown) raises NVMLError_Uninitialized, and so does a
  shutdown too many;
- nvmlDeviceGetHandleByIndex refuses an index outside [0, count) (or not an int) with
  NVMLError_InvalidArgument; a handle whose device was removed raises NVMLError_GpuIsLost;
- nvmlDeviceSetPowerManagementLimit takes whole milliwatts (a float is a TypeError, as
  ctypes' c_uint makes it), refuses a limit outside the device's constraints with
  NVMLError_InvalidArgument and, on a device made unprivileged, raises
  NVMLError_NoPermission (setting limits needs root);
- power readings follow the limit: a busy device draws min(limit, its load draw), an
  idle one its idle draw, reached at once or, with `lag_s` > 0, along a first-order lag.

Whether a device is busy is the emulation's side, not NVML's: `set_busy(index, busy)`
(agents/gpu_power.py marks the devices of running runs busy). `for_site` maps a site's
GPU figures onto devices: default and max limit = gpu_load_w, idle draw = gpu_idle_w,
min limit = MIN_LIMIT_FRACTION of the max (NVIDIA parts allow roughly 0.25-0.4 of their
max: H100 SXM 200 of 700 W, A100 SXM 100 of 400 W, A40 100 of 300 W, V100 100 of 250 W).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pynvml
from pynvml import NVMLError

MIN_LIMIT_FRACTION = 0.3  # the fake device's lowest power limit, as a fraction of its max

NVML_ERROR_UNINITIALIZED = pynvml.NVML_ERROR_UNINITIALIZED
NVML_ERROR_INVALID_ARGUMENT = pynvml.NVML_ERROR_INVALID_ARGUMENT
NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST


@dataclass
class FakeDevice:
    """One emulated GPU; limits and draws in milliwatts."""

    name: str
    uuid: str
    min_limit_mw: int
    max_limit_mw: int
    default_limit_mw: int
    idle_mw: int
    load_mw: int  # what it draws busy and uncapped
    limit_mw: int = 0  # 0: the default
    busy: bool = False
    privileged: bool = True  # False: setting its limit fails with NO_PERMISSION
    lag_s: float = 0.0  # first-order time constant of its draw; 0: at once
    _drawn_mw: float | None = None
    _drawn_at: float = 0.0

    def __post_init__(self):
        if not 0 < self.min_limit_mw <= self.default_limit_mw <= self.max_limit_mw:
            raise ValueError("a device needs 0 < min limit <= default limit <= max limit")
        if self.limit_mw == 0:
            self.limit_mw = self.default_limit_mw

    def target_mw(self) -> float:
        return float(min(self.limit_mw, self.load_mw)) if self.busy else float(self.idle_mw)

    def draw_mw(self, now: float) -> int:
        """Its power now: the target, or on its way there with a lag."""
        target = self.target_mw()
        if self.lag_s <= 0 or self._drawn_mw is None:
            self._drawn_mw, self._drawn_at = target, now
            return round(target)
        elapsed = max(0.0, now - self._drawn_at)
        self._drawn_mw = target + (self._drawn_mw - target) * math.exp(-elapsed / self.lag_s)
        self._drawn_at = now
        return round(self._drawn_mw)

    def settle(self, now: float) -> None:
        """Start the lag from the current draw (called before the target changes)."""
        if self.lag_s > 0:
            self.draw_mw(now)


class FakeHandle:
    """A device handle: opaque, as c_nvmlDevice_t is to callers."""

    __slots__ = ("_device",)

    def __init__(self, device: FakeDevice):
        self._device = device

    def __repr__(self) -> str:
        return f"<FakeHandle {self._device.uuid}>"


class FakeNvml:
    """The pynvml functions the agent uses, over `devices` (indices are list positions)."""

    NVMLError = NVMLError

    def __init__(self, devices: list[FakeDevice] | None = None, clock: Callable[[], float] = time.monotonic, init_error: int | None = None):
        self.devices: list[FakeDevice] = list(devices or [])
        self.clock = clock
        self.init_error = init_error  # e.g. NVML_ERROR_DRIVER_NOT_LOADED: a machine without a driver
        self.template: tuple[float, float, float, float] | None = None  # set by for_site
        self.refcount = 0
        self.set_calls: list[tuple[str, int]] = []  # (uuid, limit mW) of every accepted Set

    @classmethod
    def for_site(
        cls,
        count: int,
        gpu_load_w: float,
        gpu_idle_w: float,
        min_limit_fraction: float = MIN_LIMIT_FRACTION,
        lag_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> FakeNvml:
        fake = cls(clock=clock)
        fake.template = (gpu_load_w, gpu_idle_w, min_limit_fraction, lag_s)
        fake.resize(count)
        return fake

    def resize(self, count: int) -> None:
        """Add emulated devices (from the site's figures) or remove the last ones."""
        if self.template is None:
            raise ValueError("only a FakeNvml made by for_site knows what devices to add")
        load_w, idle_w, min_fraction, lag_s = self.template
        max_mw = round(load_w * 1000)
        while len(self.devices) < count:
            i = len(self.devices)
            self.devices.append(
                FakeDevice(
                    name="Powerplane emulated GPU",
                    uuid=f"GPU-fa4e0000-0000-4000-8000-{i:012d}",
                    min_limit_mw=max(1, round(max_mw * min_fraction)),
                    max_limit_mw=max_mw,
                    default_limit_mw=max_mw,
                    idle_mw=round(idle_w * 1000),
                    load_mw=max_mw,
                    lag_s=lag_s,
                )
            )
        del self.devices[max(0, count) :]

    # ------------------------------------------------------------------ emulation side
    def set_busy(self, index: int, busy: bool) -> None:
        device = self.devices[index]
        device.settle(self.clock())
        device.busy = busy

    # ------------------------------------------------------------------ the NVML surface
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.refcount += 1

    def nvmlShutdown(self) -> None:
        self._initialised()
        self.refcount -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._initialised()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index) -> FakeHandle:
        self._initialised()
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.devices):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(self.devices[index])

    def nvmlDeviceGetName(self, handle) -> str:
        return self._device(handle).name

    def nvmlDeviceGetUUID(self, handle) -> str:
        return self._device(handle).uuid

    def nvmlDeviceGetPowerUsage(self, handle) -> int:
        return self._device(handle).draw_mw(self.clock())

    def nvmlDeviceGetPowerManagementLimit(self, handle) -> int:
        return self._device(handle).limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle) -> list[int]:
        device = self._device(handle)
        return [device.min_limit_mw, device.max_limit_mw]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle) -> int:
        return self._device(handle).default_limit_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle) -> int:
        return self._device(handle).limit_mw  # no other limiter in the fake

    def nvmlDeviceSetPowerManagementLimit(self, handle, limit) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise TypeError(f"int expected instead of {type(limit).__name__}")  # what c_uint(limit) raises
        device = self._device(handle)
        if not device.privileged:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        if not device.min_limit_mw <= limit <= device.max_limit_mw:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        device.settle(self.clock())
        device.limit_mw = limit
        self.set_calls.append((device.uuid, limit))

    # ------------------------------------------------------------------ checks
    def _initialised(self) -> None:
        if self.refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _device(self, handle) -> FakeDevice:
        self._initialised()
        if not isinstance(handle, FakeHandle):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not any(d is handle._device for d in self.devices):
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return handle._device
