"""NVML, real and fake: the fake honours the library's contract (errors with the real
classes and codes, limits refused outside [min, max], readings that follow the limit),
NvmlGpus clamps and sets limits only when they change, and the read-only contract runs
against the real pynvml when this machine has a GPU (reading only: every Set function
is refused before it could reach a device). Also scripts/gpu_check.py, on the fake."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pynvml
import pytest

from agents.fake_nvml import MIN_LIMIT_FRACTION, FakeDevice, FakeNvml
from agents.nvml import NvmlGpus, ReadOnlyError, open_nvml
from tests.builders import FakeClock

ROOT = Path(__file__).resolve().parents[2]


class NoSet:
    """Passes NVML calls through but fails the test on any Set function."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        if "Set" in name:
            pytest.fail(f"{name} called on an NVML that must only be read")
        return getattr(self._module, name)


def site_fake(count=4, load_w=1000.0, idle_w=150.0, **kw) -> FakeNvml:
    return FakeNvml.for_site(count, load_w, idle_w, **kw)


def real_or_skip():
    gpus, why = open_nvml(read_only=True)
    if gpus is None or gpus.count == 0:
        pytest.skip(f"no GPU here ({why or 'no devices'})")
    gpus.close()
    return NoSet(pynvml)


@pytest.fixture(params=["fake", "real"])
def nvml(request):
    """The module under test: the fake, or the real library wrapped so it cannot set."""
    return NoSet(site_fake()) if request.param == "fake" else real_or_skip()


def raises_nvml(code):
    """pytest.raises for the NVMLError subclass the real library raises for `code`."""
    return pytest.raises(pynvml.nvmlExceptionClass(code))


# ------------------------------------------------------------------ the contract, real or fake (reading only)
def test_the_read_only_contract(nvml):
    nvml.nvmlInit()
    try:
        count = nvml.nvmlDeviceGetCount()
        assert count >= 1
        with raises_nvml(pynvml.NVML_ERROR_INVALID_ARGUMENT) as err:
            nvml.nvmlDeviceGetHandleByIndex(count)
        assert err.value.value == pynvml.NVML_ERROR_INVALID_ARGUMENT and str(err.value) == "Invalid Argument"
        for i in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            assert isinstance(nvml.nvmlDeviceGetName(handle), str) and nvml.nvmlDeviceGetUUID(handle).startswith("GPU-")
            low, high = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
            default = nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle)
            limit = nvml.nvmlDeviceGetPowerManagementLimit(handle)
            assert all(isinstance(v, int) for v in (low, high, default, limit))  # milliwatts
            assert 0 < low <= default <= high and low <= limit <= high
            assert 0 < nvml.nvmlDeviceGetEnforcedPowerLimit(handle) <= high
            usage = nvml.nvmlDeviceGetPowerUsage(handle)
            assert isinstance(usage, int) and 0 < usage <= 2 * high
    finally:
        nvml.nvmlShutdown()


def test_nvml_gpus_reads_watts_through_either(nvml):
    gpus = NvmlGpus(nvml, read_only=True).open()
    try:
        assert gpus.count >= 1
        for d in gpus.devices:
            assert d.can_cap and d.min_limit_w <= d.default_limit_w <= d.max_limit_w
            assert 0 < gpus.power_w(d.index) <= 2 * d.max_limit_w
            assert d.min_limit_w <= gpus.limit_w(d.index) <= d.max_limit_w
    finally:
        gpus.close()


# ------------------------------------------------------------------ the fake's errors
def test_every_device_call_before_init_or_after_shutdown_is_uninitialised():
    fake = site_fake()
    with raises_nvml(pynvml.NVML_ERROR_UNINITIALIZED):
        fake.nvmlDeviceGetCount()
    with raises_nvml(pynvml.NVML_ERROR_UNINITIALIZED):
        fake.nvmlShutdown()
    fake.nvmlInit()
    fake.nvmlInit()  # reference-counted, as the library
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    fake.nvmlShutdown()
    assert fake.nvmlDeviceGetPowerUsage(handle) == 150_000  # still open once
    fake.nvmlShutdown()
    for call in (fake.nvmlDeviceGetPowerUsage, fake.nvmlDeviceGetPowerManagementLimit, fake.nvmlDeviceGetName):
        with raises_nvml(pynvml.NVML_ERROR_UNINITIALIZED) as err:
            call(handle)
        assert isinstance(err.value, pynvml.NVMLError_Uninitialized) and err.value.value == 1
    with raises_nvml(pynvml.NVML_ERROR_UNINITIALIZED):
        fake.nvmlDeviceSetPowerManagementLimit(handle, 500_000)


def test_limits_outside_the_constraints_are_refused_and_change_nothing():
    fake = site_fake()
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(1)
    low, high = fake.nvmlDeviceGetPowerManagementLimitConstraints(handle)
    assert (low, high) == (round(MIN_LIMIT_FRACTION * 1_000_000), 1_000_000)
    for bad in (low - 1, high + 1, 0):
        with raises_nvml(pynvml.NVML_ERROR_INVALID_ARGUMENT) as err:
            fake.nvmlDeviceSetPowerManagementLimit(handle, bad)
        assert err.value.value == pynvml.NVML_ERROR_INVALID_ARGUMENT
    with pytest.raises(TypeError):  # c_uint refuses a float in the real binding
        fake.nvmlDeviceSetPowerManagementLimit(handle, 500_000.0)
    assert fake.nvmlDeviceGetPowerManagementLimit(handle) == high and fake.set_calls == []
    fake.nvmlDeviceSetPowerManagementLimit(handle, low)
    assert fake.nvmlDeviceGetPowerManagementLimit(handle) == fake.nvmlDeviceGetEnforcedPowerLimit(handle) == low
    for bad_index in (-1, 4, "0", True):
        with raises_nvml(pynvml.NVML_ERROR_INVALID_ARGUMENT):
            fake.nvmlDeviceGetHandleByIndex(bad_index)
    with raises_nvml(pynvml.NVML_ERROR_INVALID_ARGUMENT):
        fake.nvmlDeviceGetPowerUsage(object())  # not a handle of this library


def test_unprivileged_sets_lost_devices_and_a_missing_driver_fail_as_the_library_does():
    fake = site_fake()
    fake.devices[0].privileged = False
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with raises_nvml(pynvml.NVML_ERROR_NO_PERMISSION):
        fake.nvmlDeviceSetPowerManagementLimit(handle, 500_000)
    last = fake.nvmlDeviceGetHandleByIndex(3)
    fake.resize(3)
    with raises_nvml(pynvml.NVML_ERROR_GPU_IS_LOST):
        fake.nvmlDeviceGetPowerUsage(last)
    assert fake.nvmlDeviceGetCount() == 3
    with raises_nvml(pynvml.NVML_ERROR_DRIVER_NOT_LOADED):
        FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED).nvmlInit()
    assert open_nvml(FakeNvml(init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)) == (None, "NVML unavailable: NVML Shared Library Not Found")


def test_readings_follow_the_limit_busy_or_idle():
    fake = site_fake()
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(2)
    assert fake.nvmlDeviceGetPowerUsage(handle) == 150_000  # idle
    fake.set_busy(2, True)
    assert fake.nvmlDeviceGetPowerUsage(handle) == 1_000_000  # at load, uncapped
    fake.nvmlDeviceSetPowerManagementLimit(handle, 700_000)
    assert fake.nvmlDeviceGetPowerUsage(handle) == 700_000  # min(limit, load)
    fake.devices[2].load_mw = 600_000  # a lighter workload is under the cap
    assert fake.nvmlDeviceGetPowerUsage(handle) == 600_000
    fake.set_busy(2, False)
    assert fake.nvmlDeviceGetPowerUsage(handle) == 150_000


def test_with_a_lag_the_draw_approaches_the_new_limit_first_order():
    clock = FakeClock(0.0)
    fake = FakeNvml([FakeDevice("g", "GPU-1", 300_000, 1_000_000, 1_000_000, 100_000, 1_000_000, busy=True, lag_s=2.0)], clock=clock)
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    assert fake.nvmlDeviceGetPowerUsage(handle) == 1_000_000
    fake.nvmlDeviceSetPowerManagementLimit(handle, 500_000)
    assert fake.nvmlDeviceGetPowerUsage(handle) == 1_000_000  # not yet moved
    clock.now = 2.0  # one time constant: 63 % of the way
    assert fake.nvmlDeviceGetPowerUsage(handle) == pytest.approx(500_000 + 500_000 * math.exp(-1), abs=1)
    clock.now = 30.0
    assert fake.nvmlDeviceGetPowerUsage(handle) == pytest.approx(500_000, abs=2)


# ------------------------------------------------------------------ NvmlGpus on the fake
def test_nvml_gpus_clamps_into_the_constraints_and_sets_only_changes():
    fake = site_fake()
    gpus = NvmlGpus(fake).open()
    assert [d.index for d in gpus.devices] == [0, 1, 2, 3] and gpus.devices[0].default_limit_w == 1000.0
    assert gpus.set_limit_w(0, 100.0) == 300.0  # below the lowest limit: the lowest
    assert gpus.set_limit_w(0, 5000.0) == 1000.0
    assert gpus.set_limit_w(1, 712.3456) == 712.346  # whole milliwatts
    assert gpus.set_limit_w(1, 712.3456) == 712.346
    assert fake.set_calls == [(fake.devices[0].uuid, 300_000), (fake.devices[0].uuid, 1_000_000), (fake.devices[1].uuid, 712_346)]
    assert gpus.restore_default(1) == 1000.0
    gpus.close()
    with raises_nvml(pynvml.NVML_ERROR_UNINITIALIZED):
        gpus.power_w(0)


def test_read_only_nvml_gpus_never_reach_a_set_function():
    fake = site_fake()
    gpus = NvmlGpus(NoSet(fake), read_only=True).open()
    assert gpus.set_limit_w(0, 1000.0) == 1000.0  # already in force: nothing to send
    with pytest.raises(ReadOnlyError, match="read-only"):
        gpus.set_limit_w(0, 500.0)
    assert fake.set_calls == [] and gpus.limit_w(0) == 1000.0


# ------------------------------------------------------------------ scripts/gpu_check.py
def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_reports_and_samples_without_setting(capsys):
    gpu_check = load_gpu_check()
    fake = site_fake(2)
    fake.set_busy(1, True)
    assert gpu_check.main(["--seconds", "0.15", "--interval", "0.05", "--", "true"], nvml=NoSet(fake)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 GPU(s) through NVML"
    figures = json.loads(out[-1])
    assert [d["power_w"] for d in figures["devices"]] == [150.0, 1000.0]
    assert figures["devices"][0]["min_limit_w"] == 300.0 and figures["command_exit"] == 0
    assert figures["samples"]["1"]["mean_w"] == 1000.0 and figures["samples"]["0"]["n"] >= 2
    assert fake.set_calls == [] and fake.refcount == 0  # opened and closed again


def test_gpu_check_refuses_set_functions_itself_and_says_when_nvml_is_missing(capsys):
    gpu_check = load_gpu_check()
    guarded = gpu_check.NoSetting(site_fake())
    with pytest.raises(PermissionError):
        guarded.nvmlDeviceSetPowerManagementLimit(None, 1)
    assert gpu_check.main(["--seconds", "0"], nvml=FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)) == 1
    assert capsys.readouterr().err.strip() == "gpu_check: NVML unavailable: Driver Not Loaded"
