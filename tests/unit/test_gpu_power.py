"""The agent's GPU power on NVML (always the fake here; never a real GPU): runs get
devices, a RunPowerCap sets their limits and 1.0 or the run's end restores them, the
backend is chosen as the site config says, failures are survived, and the heartbeat's
GPU power is exactly what the scheduler's ledger counts (also as a property)."""

from __future__ import annotations

import logging

import pynvml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.fake_nvml import MIN_LIMIT_FRACTION, FakeNvml
from agents.gpu_power import GpuBackendError, GpuPower, gpu_it_power_w
from agents.site_config import parse_site_config
from agents.site_power import SitePowerControl
from scheduler.core.decisions import CapRunPower
from scheduler.core.jobs import JobKind
from scheduler.core.ledger import AiClaim, SiteLedger
from scheduler.core.sites import GpuNode
from tests.builders import a_site_power

LOAD, IDLE = 1000.0, 150.0


def fake_gpus(total=8, **kw) -> GpuPower:
    gpus = GpuPower(LOAD, IDLE, backend="fake", **kw)
    gpus.total_gpus = total
    return gpus


def limits(gpus: GpuPower) -> list[float]:
    return [gpus.gpus.limit_w(i) for i in range(gpus.gpus.count)]


def test_a_cap_sets_the_limits_of_the_runs_devices_and_one_restores_them():
    gpus = fake_gpus()
    gpus.add_run("r1", 4)
    gpus.add_run("r2", 2)
    assert gpus.devices_of == {"r1": [0, 1, 2, 3], "r2": [4, 5]}
    assert gpus.set_power_fraction("r1", 0.7) == pytest.approx(0.7)
    assert limits(gpus) == [700.0] * 4 + [1000.0] * 4
    assert gpus.power_w() == pytest.approx(4 * 700 + 2 * 1000 + 2 * IDLE)
    assert gpus.set_power_fraction("r1", 1.0) == 1.0
    assert limits(gpus) == [1000.0] * 8 and gpus.power_w() == pytest.approx(6 * 1000 + 2 * IDLE)


def test_the_runs_end_restores_its_devices_and_frees_them():
    gpus = fake_gpus()
    gpus.add_run("r1", 4)
    gpus.set_power_fraction("r1", 0.63)
    gpus.forget("r1")
    assert limits(gpus) == [1000.0] * 8 and gpus.power_w() == 8 * IDLE and gpus.devices_of == {}
    gpus.add_run("r3", 8)
    assert gpus.devices_of["r3"] == list(range(8)) and limits(gpus) == [1000.0] * 8  # a new run starts uncapped


def test_a_cap_below_the_lowest_limit_is_clamped_and_says_what_it_applied():
    gpus = fake_gpus()
    gpus.add_run("r1", 2)
    assert gpus.set_power_fraction("r1", 0.1) == pytest.approx(MIN_LIMIT_FRACTION)
    assert limits(gpus)[:2] == [MIN_LIMIT_FRACTION * LOAD] * 2
    assert gpus.power_w() == pytest.approx(2 * MIN_LIMIT_FRACTION * LOAD + 6 * IDLE)


def test_a_cap_before_the_start_and_runs_found_before_the_inventory_are_applied_at_allocation():
    gpus = GpuPower(LOAD, IDLE, backend="fake")
    gpus.set_power_fraction("r1", 0.7)  # the order came first
    gpus.add_run("r1", 2)  # the agent restarted: runs are listed before Ray's inventory
    assert gpus.devices_of == {"r1": []} and gpus.power_w() == 0.0
    gpus.total_gpus = 4
    assert gpus.devices_of == {"r1": [0, 1]} and limits(gpus) == [700.0, 700.0, 1000.0, 1000.0]
    gpus.total_gpus = 4  # every Register says it again: nothing moves
    assert gpus.devices_of == {"r1": [0, 1]} and gpus.power_w() == pytest.approx(2 * 700 + 2 * IDLE)


def test_a_run_short_of_devices_gets_them_when_another_ends(caplog):
    gpus = fake_gpus(4)
    gpus.add_run("r1", 3)
    with caplog.at_level(logging.WARNING):
        gpus.add_run("r2", 2)
    assert gpus.devices_of["r2"] == [3] and "needs 2 GPUs but holds 1" in caplog.text
    gpus.forget("r1")
    assert gpus.devices_of == {"r2": [3, 0]} and gpus.power_w() == pytest.approx(2 * LOAD + 2 * IDLE)


def test_auto_uses_nvml_only_when_it_starts_and_sees_the_sites_gpus():
    hardware = FakeNvml.for_site(8, 700.0, 70.0)  # stands in for a real library with 8 devices
    gpus = GpuPower(LOAD, IDLE, nvml=hardware)
    assert gpus.gpus is None and hardware.refcount == 0  # undecided until the inventory
    gpus.total_gpus = 8
    assert gpus.backend == "nvml" and gpus.gpus.nvml is hardware and gpus.power_w() == 8 * 70.0
    elsewhere = FakeNvml.for_site(1, 700.0, 70.0)
    gpus = GpuPower(LOAD, IDLE, nvml=elsewhere)
    gpus.total_gpus = 16  # Ray counts GPUs this host does not have
    assert gpus.backend == "fake" and elsewhere.refcount == 0 and gpus.power_w() == 16 * IDLE
    gpus = GpuPower(LOAD, IDLE, nvml=FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    gpus.total_gpus = 2
    assert gpus.backend == "fake" and gpus.power_w() == 2 * IDLE


def test_an_explicit_backend_is_used_or_refused_in_one_line():
    with pytest.raises(GpuBackendError) as err:
        GpuPower(LOAD, IDLE, backend="nvml", nvml=FakeNvml(init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    assert str(err.value) == "gpu_backend is nvml but NVML unavailable: NVML Shared Library Not Found"
    hardware = FakeNvml.for_site(2, 700.0, 70.0)
    gpus = GpuPower(LOAD, IDLE, backend="nvml", nvml=hardware)
    gpus.total_gpus = 2
    gpus.add_run("r1", 2)
    hardware.set_busy(0, True)  # real devices are busy because the run works them
    assert gpus.set_power_fraction("r1", 0.5) == pytest.approx(0.5)
    assert hardware.set_calls == [(hardware.devices[0].uuid, 350_000), (hardware.devices[1].uuid, 350_000)]
    assert gpus.power_w() == pytest.approx(350.0 + 70.0)
    with pytest.raises(GpuBackendError, match="gpu_backend must be one of auto, nvml, fake"):
        GpuPower(LOAD, IDLE, backend="cuda")
    with pytest.raises(ValueError, match="gpu_backend: Input should be 'auto', 'nvml' or 'fake'"):
        parse_site_config({"gpu_backend": "cuda"})


def test_devices_never_capped_are_never_set_and_failed_sets_are_survived(caplog):
    hardware = FakeNvml.for_site(4, 700.0, 70.0)
    gpus = GpuPower(LOAD, IDLE, backend="nvml", nvml=hardware)
    gpus.add_run("r1", 2)
    gpus.set_power_fraction("r1", 1.0)
    gpus.forget("r1")
    assert hardware.set_calls == []  # no cap ordered: no limit touched
    for device in hardware.devices:
        device.privileged = False  # not root
    gpus.add_run("r2", 2)
    with caplog.at_level(logging.WARNING):
        assert gpus.set_power_fraction("r2", 0.6) == 1.0  # nothing applied, and it says so
    assert "not set: Insufficient Permissions" in caplog.text and "60% of default ordered, 100% applied" in caplog.text


def test_a_failing_reading_counts_at_the_last_good_one(monkeypatch):
    gpus = fake_gpus(2)
    gpus.add_run("r1", 1)
    assert gpus.power_w() == LOAD + IDLE
    fake = gpus.gpus.nvml

    def lost(handle):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    monkeypatch.setattr(fake, "nvmlDeviceGetPowerUsage", lost)
    assert gpus.power_w() == LOAD + IDLE
    fresh = fake_gpus(2)
    monkeypatch.setattr(fresh.gpus.nvml, "nvmlDeviceGetPowerUsage", lost)
    assert fresh.power_w() == 2 * LOAD  # never read: its default limit, the safe figure


# ------------------------------------------------------------------ the heartbeat keeps the ledger's contract
def site_power() -> SitePowerControl:
    config = parse_site_config({"gpu_load_w": LOAD, "gpu_idle_w": IDLE, "gpu_backend": "fake"})
    power = SitePowerControl(config)
    power.follow_nodes([GpuNode("a", "", 4), GpuNode("b", "", 12)])
    return power


def ledger_ai_w(total: int, runs: dict[str, tuple[int, float]]) -> float:
    site = a_site_power("s").cap_w(1e9).overhead(1.1).with_gpus(total, LOAD, IDLE).build()
    claims = tuple(AiClaim(r, JobKind.TRAINING, 0, i, g, 50.0, f) for i, (r, (g, f)) in enumerate(runs.items()))
    return SiteLedger(site, 1e9, claims).ai_it_w


def test_heartbeat_gpu_power_is_what_the_ledger_counts():
    power = site_power()
    power.gpus.add_run("train", 8)
    power.gpus.add_run("serve", 4)
    power.cap_run(CapRunPower("site", "train", 0.7, "cap cut"))
    reading = power.reading()
    assert reading.gpu_w == pytest.approx(ledger_ai_w(16, {"train": (8, 0.7), "serve": (4, 1.0)}))
    assert reading.gpu_w == pytest.approx(4 * IDLE + 8 * 700 + 4 * 1000)
    power.cap_run(CapRunPower("site", "train", 1.0, "event over"))
    assert power.reading().gpu_w == pytest.approx(ledger_ai_w(16, {"train": (8, 1.0), "serve": (4, 1.0)}))


runs_strategy = st.lists(
    st.tuples(st.integers(1, 8), st.floats(0.0, 1.2, allow_nan=False), st.booleans()),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(total=st.integers(0, 40), runs=runs_strategy, ended=st.sets(st.integers(0, 5)))
def test_property_readings_equal_the_ledger_formula(total, runs, ended):
    """Random runs (GPUs, fraction, whether the cap came before the start), some of them
    ended: the fake's readings are the ledger's formula over the runs that hold devices,
    each at its fraction clamped to what the devices allow; free devices are at their
    default limit; no device is held twice."""
    gpus = fake_gpus(total)
    lowest = max(IDLE / LOAD, MIN_LIMIT_FRACTION)
    for i, (n, fraction, cap_first) in enumerate(runs):
        if cap_first:
            gpus.set_power_fraction(f"r{i}", fraction)
        gpus.add_run(f"r{i}", n)
        if not cap_first:
            gpus.set_power_fraction(f"r{i}", fraction)
    for i in ended:
        gpus.forget(f"r{i}")
    held = [i for indices in gpus.devices_of.values() for i in indices]
    assert len(held) == len(set(held)) <= total
    active = {r: (len(ix), min(1.0, max(lowest, gpus.fractions.get(r, 1.0)))) for r, ix in gpus.devices_of.items() if ix}
    expected = gpu_it_power_w(total, LOAD, IDLE, active.values())
    assert gpus.power_w() == pytest.approx(expected, abs=1e-3 * max(1, total))
    assert gpus.power_w() == pytest.approx(ledger_ai_w(total, active), abs=1e-3 * max(1, total))
    free = set(range(total)) - set(held)
    assert all(gpus.gpus.limit_w(i) == LOAD for i in free)
    if sum(n for i, (n, _, _) in enumerate(runs) if i not in ended) <= total:
        assert all(len(gpus.devices_of[f"r{i}"]) == n for i, (n, _, _) in enumerate(runs) if i not in ended)
