"""The capped-training speed curve (scheduler/core/gpu_speed.py) from the Zeus data
(scheduler/sim/zeus.py), and the simulator running capped training at it: a capped
run finishes later by exactly the curve's factor, and the summary says how much."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.gpu_speed import ZEUS_SPEED_CURVE, Measurement, SpeedCurve, curve_from_measurements, workload_points
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobKind
from scheduler.core.ledger import power_fraction_for_slowdown
from scheduler.sim.data import data_dir
from scheduler.sim.engine import Scenario, SimConfig, Simulator
from scheduler.sim.files import InputError
from scheduler.sim.physics import Environment, Plant, RunPhysics
from scheduler.sim.report import format_summary, summarize
from scheduler.sim.scenario import Arrival, ScenarioSite
from scheduler.sim.traces import Hashprice, PriceTrace
from scheduler.sim.zeus import load_speed_curve, load_workloads, speed_curve_from, zeus_files
from tests.builders import a_site_power

DATA = data_dir()  # ../shared/data, else the sample shipped in the package (its Zeus files are whole copies)


# ------------------------------------------------------------------ the curve
def test_the_curve_is_monotone_and_one_at_full_power():
    c = ZEUS_SPEED_CURVE
    assert c.speed(1.0) == c.speed(1.3) == 1.0 and c.slowdown_pct(1.0) == 0.0
    grid = [i / 200 for i in range(1, 201)]
    speeds = [c.speed(f) for f in grid]
    assert all(b >= a for a, b in zip(speeds, speeds[1:]))
    assert all(0 < s < 1 for s in speeds[:-1])
    assert c.speed(0.15) == pytest.approx(0.15)  # below the grid: proportional to power


def test_the_built_in_curve_is_the_one_the_data_gives():
    assert load_speed_curve(zeus_files(DATA)) == ZEUS_SPEED_CURVE
    curve, source = speed_curve_from(DATA)
    assert curve == ZEUS_SPEED_CURVE and "zeus_a40" in source and "zeus_v100" in source


def raw_workloads(name: str) -> dict[tuple, dict[int, tuple[float, float]]]:
    with (DATA / name).open() as handle:
        out: dict[tuple, dict[int, tuple[float, float]]] = defaultdict(dict)
        for row in csv.DictReader(handle):
            key = (row["dataset"], row["network"], row["batch_size"], row["optimizer"])
            out[key][int(row["power_limit"])] = (float(row["time_per_epoch"]), float(row["average_power"]))
        return out


def test_the_curve_matches_the_data_at_measured_limits():
    """V100 (max limit 250 W): the median over workloads of epoch time at 250 W / at each
    limit, straight from the file, against the limit-axis curve of that file."""
    raw = raw_workloads("zeus_v100_power_limit_vs_epoch_time.csv")
    curve = load_speed_curve([DATA / "zeus_v100_power_limit_vs_epoch_time.csv"], axis="limit")
    for limit in (150, 175, 200, 225):
        measured = statistics.median(w[250][0] / w[limit][0] for w in raw.values())
        assert curve.speed(limit / 250) == pytest.approx(measured, abs=0.01), limit
    # one workload, exactly: its own points are the measurements
    key = ("cifar100", "shufflenetv2", "1024", "adam")
    points = workload_points([Measurement(lim, t, p) for lim, (t, p) in raw[key].items()])
    t_max, p_max = raw[key][250]
    assert points[-1] == (1.0, 1.0)
    assert points[0] == pytest.approx((raw[key][100][1] / p_max, t_max / raw[key][100][0]))


@pytest.mark.parametrize("tolerance", [5.0, 10.0, 25.0, 50.0])
def test_the_ledger_caps_training_to_the_lowest_fraction_within_its_tolerance_on_the_curve(tolerance):
    """The ladder caps training to ledger.power_fraction_for_slowdown: on the one speed
    curve its slowdown is the tolerance, and any lower fraction would be slower."""
    fraction = power_fraction_for_slowdown(tolerance)
    assert ZEUS_SPEED_CURVE.slowdown_pct(fraction) == pytest.approx(tolerance, abs=1e-6)
    assert ZEUS_SPEED_CURVE.slowdown_pct(fraction - 0.01) > tolerance


@given(st.floats(0.0, 400.0, allow_nan=False))
def test_fraction_for_slowdown_inverts_the_slowdown(tolerance):
    fraction = ZEUS_SPEED_CURVE.fraction_for_slowdown(tolerance)
    assert 0 < fraction <= 1.0
    assert ZEUS_SPEED_CURVE.slowdown_pct(fraction) == pytest.approx(tolerance, abs=1e-6)


def test_noise_is_removed_per_workload_and_the_median_is_taken():
    noisy = [Measurement(100, 20.0, 110), Measurement(150, 9.0, 160), Measurement(200, 10.0, 150), Measurement(250, 9.5, 200)]
    # 150 W ran faster than 250 W and 200 W drew less than 150 W: both flattened
    points = workload_points(noisy)
    assert [x for x, _ in points] == pytest.approx([0.55, 0.8, 0.8, 1.0])
    assert [y for _, y in points] == pytest.approx([0.475, 0.95, 0.95, 1.0])
    a = [Measurement(50, 2.0, 50), Measurement(100, 1.0, 100)]  # speed 0.5 at 0.5
    b = [Measurement(50, 4.0, 50), Measurement(100, 1.0, 100)]  # 0.25
    c = [Measurement(50, 1.0, 100), Measurement(100, 1.0, 100)]  # not power-bound: 1.0 at 1.0
    curve = curve_from_measurements([a, b, c], grid=(0.5, 1.0))
    assert curve.points == ((0.5, 0.5), (1.0, 1.0))  # c is proportional below its lowest power: 0.5
    with pytest.raises(ValueError):
        SpeedCurve(((0.5, 0.9), (0.7, 0.8), (1.0, 1.0)))


def test_a_bad_zeus_file_is_refused_with_file_and_line(tmp_path):
    bad = tmp_path / "zeus_x_power_limit_vs_epoch_time.csv"
    bad.write_text("dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\nc,n,1,sgd,100,fast,90\n")
    with pytest.raises(InputError, match=r"zeus_x_power_limit_vs_epoch_time.csv:2: time_per_epoch: expected a number"):
        load_workloads(bad)
    assert speed_curve_from(tmp_path / "nothing")[0] == ZEUS_SPEED_CURVE


# ------------------------------------------------------------------ the simulator
def still(cap_w: float = 1e9) -> Environment:
    return Environment(cap_w=lambda t: cap_w, price=lambda t: 20.0, hashprice=lambda t: 45.0, next_change=lambda t: float("inf"))


@pytest.mark.parametrize("fraction", [1.0, 0.9, 0.7, 0.63])
def test_a_capped_run_finishes_later_by_the_curves_factor(fraction):
    site = a_site_power("s").cap_w(1e9).overhead(1.1).with_gpus(8).build()
    plant = Plant(site, 0.0, 0.0)
    plant.send(0.0, ("start", RunPhysics("job", 8, fraction, 3600.0, 2.0)))
    ended, t, slowdown = None, 0.0, 0.0
    while ended is None and t < 4 * 3600:
        totals = plant.advance(t, t + 60.0, still())
        slowdown += totals.slowdown_s.get("job", 0.0)
        ended = next((m[2] for m in plant.receive(t + 60.0) if m[0] == "ended"), None)
        t += 60.0
    assert ended == pytest.approx(3600.0 / ZEUS_SPEED_CURVE.speed(fraction))
    assert slowdown == pytest.approx(ended - 3600.0, abs=1e-6)
    if fraction < 1.0:
        assert ended > 3600.0 * 1.02


T0 = 1_717_200_000.0


def capped_world(cut: bool) -> tuple[Scenario, SimConfig]:
    """64 GPUs of training (25 % tolerance) alone on a site; with `cut`, the grid allows
    what 64 GPUs draw at 75 % of load for the second hour."""
    site = ScenarioSite(a_site_power("s0").cap_mw(10).overhead(1.1).with_gpus(64).build(), "r0", "node")
    prices = PriceTrace("mem", tuple(T0 + i * 900.0 for i in range(24)), {"node": (20.0,) * 24}, 900.0)
    jobs = (Arrival(0.0, JobKind.TRAINING, 64, 3 * 3600.0, slowdown_tolerance_pct=25.0, job_id="train"),)
    events = ()
    if cut:
        events = (GridEvent("cut", GridEventKind.CAP_LIMIT, T0 + 3600, T0 + 7200, site_id="s0", cap_w=64 * 750 * 1.1),)
    return Scenario((site,), prices, None, Hashprice.constant(45.0), jobs, events, T0, T0 + 6 * 3600), SimConfig()


def test_capped_training_in_the_simulator_finishes_later_and_the_summary_says_by_how_much():
    done: dict[str, dict] = {"free": {}, "capped": {}}  # the engine drops a job once it has finished
    free = Simulator(*capped_world(cut=False), on_finished=lambda sj: done["free"].setdefault(sj.job.job_id, sj)).run()
    capped = Simulator(*capped_world(cut=True), on_finished=lambda sj: done["capped"].setdefault(sj.job.job_id, sj)).run()
    assert capped.sites["s0"].steps.get("power-cap training", 0) >= 1 and capped.sites["s0"].violation_ticks == 0
    late = done["capped"]["train"].finished_at - done["free"]["train"].finished_at
    extra = done["capped"]["train"].slowdown_s
    assert done["free"]["train"].slowdown_s == 0.0
    assert late == pytest.approx(extra, abs=1e-3)
    # capped at 70-75 % of load from the cut's lead to its end: each second capped costs 1 - speed
    lead = capped.sites["s0"].lead_s
    assert 3600 * (1 - ZEUS_SPEED_CURVE.speed(0.75)) <= extra <= (3600 + lead + 60) * (1 - ZEUS_SPEED_CURVE.speed(0.70))
    summary = summarize(capped)
    assert summary["training_slowdown_s"] == pytest.approx(extra, abs=0.1) and summary["training_slowed_jobs"] == 1
    assert summary["inputs"]["speed_curve"].startswith("built-in") and summary["definitions"]["speed_curve"][-1] == [1.0, 1.0]
    assert "capped training" in format_summary(summary) and summarize(free)["training_slowdown_s"] == 0.0
