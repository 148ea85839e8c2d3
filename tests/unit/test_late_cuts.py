"""Cuts with little or no notice, through the power state machine: a cut already in force
that mining, still ramping down, cannot meet is bridged by the fastest loads (training's
GPU power caps), which get their power back once mining is read down; a cut with notice
needs no bridge; a respond-by gives slack (curtailment starts from it, not from the start);
every reading over a cap in force counts toward the record's time over the cap and excess;
a cap below the site's physical floor is flagged when posted."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.core.decisions import CapRunPower, SetMiningTargets
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import JobKind, JobSpec, JobState, Resources
from scheduler.core.power_state import DispatchDue, GridEventPosted, PowerRead, PowerReading, PowerSettings, PowerState, SiteAttached
from tests.builders import NOW, a_job, a_site_power

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1800).with_gpus(800).build()
SITES = frozenset({"tx-1"})


def running_site() -> tuple[PowerState, JobTable, str]:
    """Mining at full and read so, and a 400-GPU training run (25 % slowdown tolerated) running."""
    power, jobs = PowerState(PowerSettings()), JobTable()
    power.handle(SiteAttached("tx-1", POWER), jobs, NOW)
    spec = JobSpec(JobKind.TRAINING, "python train.py", Resources(gpus=400), allowed_regions=("us",), slowdown_tolerance_pct=25)
    job = jobs.put(dataclasses.replace(a_job().build(), spec=spec, job_id="t", state=JobState.RUNNING, site_id="tx-1", attempt=1))
    read(power, jobs, dispatch(power, jobs, NOW), NOW)
    return power, jobs, job.run_id


def dispatch(power: PowerState, jobs: JobTable, at: float):
    return step(power, jobs, DispatchDue(sweep=True), at)


def step(power: PowerState, jobs: JobTable, stimulus, at: float):
    """One step of the machine, its job changes applied as the controller applies them."""
    decision = power.handle(stimulus, jobs, at)
    jobs.take(decision)
    return decision


def read(power: PowerState, jobs: JobTable, decision, at: float, meter_w: float = 0.0) -> None:
    """The agent reads mining at the targets the decision sent (or at the last ones)."""
    sent = [o for o in decision.urgent if isinstance(o, SetMiningTargets)]
    targets = sent[-1].targets_w if sent else power.sites["tx-1"].targets
    power.handle(PowerRead("tx-1", PowerReading({f: (w, w) for f, w in targets.items()}, 0, 0, meter_w)), jobs, at)


def gpu_caps(decision) -> list[float]:
    return [o.power_fraction for o in decision.orders if isinstance(o, CapRunPower)]


def mining_w(decision) -> float:
    return sum([o for o in decision.urgent if isinstance(o, SetMiningTargets)][-1].targets_w.values())


def cut_cap_w(power: PowerState) -> float:
    """A cap that mining alone meets once it is down: the run keeps its full power."""
    st = power.sites["tx-1"]
    return st.committed_w - 0.9 * sum(st.targets.values()) * POWER.overhead


def test_a_cut_in_force_at_once_caps_training_until_mining_is_read_down():
    power, jobs, run_id = running_site()
    cut = GridEvent("now", GridEventKind.CAP_LIMIT, start=NOW + 10, end=NOW + 900, site_id="tx-1", cap_w=cut_cap_w(power))
    posted = step(power, jobs, GridEventPosted(cut, SITES), NOW + 10)  # told at its start: no notice
    caps = gpu_caps(posted)
    assert caps and caps[0] < 1.0, "no fast GPU cap while mining ramps down"
    assert mining_w(posted) < sum(power.sites["tx-1"].held.values())  # mining comes down too
    assert jobs["t"].power_fraction == caps[0]
    read(power, jobs, posted, NOW + 12)  # mining read down
    back = dispatch(power, jobs, NOW + 12)
    assert gpu_caps(back) == [pytest.approx(1.0)] and jobs["t"].power_fraction == pytest.approx(1.0)  # the run has its power back
    assert not gpu_caps(dispatch(power, jobs, NOW + 13))  # and keeps it


def test_a_cut_with_notice_needs_no_bridge():
    power, jobs, _ = running_site()
    lead = power.lead_s("tx-1")
    start = NOW + 10 + lead + 60
    cut = GridEvent("ahead", GridEventKind.CAP_LIMIT, start=start, end=start + 900, site_id="tx-1", cap_w=cut_cap_w(power), notified_at=NOW + 10)
    posted = power.handle(GridEventPosted(cut, SITES), jobs, NOW + 10)
    assert not [o for o in posted.urgent if isinstance(o, SetMiningTargets)]  # nothing to do yet
    planned = dispatch(power, jobs, start - lead)
    assert mining_w(planned) < sum(power.sites["tx-1"].held.values()) and not gpu_caps(planned)
    read(power, jobs, planned, start - lead + 5)
    assert not gpu_caps(dispatch(power, jobs, start)) and power.grid["ahead"].notice_s == lead + 60


def test_a_respond_by_gives_slack_before_curtailing():
    power, jobs, _ = running_site()
    lead = power.lead_s("tx-1")
    start = NOW + 100
    cut = GridEvent("slack", GridEventKind.CAP_LIMIT, start=start, end=start + 3600, site_id="tx-1", cap_w=cut_cap_w(power), respond_by=start + 600)
    power.handle(GridEventPosted(cut, SITES), jobs, NOW)
    for at in (start - lead, start):  # the start, even less its lead, is not yet the time
        assert not [o for o in dispatch(power, jobs, at).urgent if isinstance(o, SetMiningTargets)], at
    assert [o for o in dispatch(power, jobs, start + 600 - lead).urgent if isinstance(o, SetMiningTargets)]


def test_readings_over_a_cap_in_force_count_time_and_excess():
    power, jobs, _ = running_site()
    cap = cut_cap_w(power)
    cut = GridEvent("count", GridEventKind.CAP_LIMIT, start=NOW + 10, end=NOW + 900, site_id="tx-1", cap_w=cap)
    posted = power.handle(GridEventPosted(cut, SITES), jobs, NOW + 10)
    read(power, jobs, posted, NOW + 12, meter_w=cap + 50_000)  # 2 s after its start: still 50 kW over
    read(power, jobs, posted, NOW + 15, meter_w=cap + 20_000)
    read(power, jobs, posted, NOW + 18, meter_w=cap - 1_000)  # met from here
    record = power.grid["count"]
    assert (record.readings_in_force, record.breaches) == (3, 2) and not record.met
    assert record.over_cap_s == 5.0 and record.max_excess_w == 50_000


def test_a_cap_below_the_sites_physical_floor_is_flagged_when_posted():
    power, jobs, _ = running_site()
    floor = (POWER.gpus * POWER.gpu_idle_w + POWER.mining_floor_w) * POWER.overhead
    below = GridEvent("impossible", GridEventKind.CAP_LIMIT, start=NOW + 10, end=NOW + 900, site_id="tx-1", cap_w=floor / 2)
    posted = power.handle(GridEventPosted(below, SITES), jobs, NOW + 10)
    record = power.grid["impossible"]
    assert record.below_floor and abs(record.floor_w - floor) < 1
    assert any(level == "warning" and "physical floor" in line for level, line, *_ in posted.notes)
    assert any("physical floor" in line for line in record.response)
    fine = GridEvent("fine", GridEventKind.CAP_LIMIT, start=NOW + 10, end=NOW + 900, site_id="tx-1", cap_w=floor * 2)
    power.handle(GridEventPosted(fine, SITES), jobs, NOW + 10)
    assert not power.grid["fine"].below_floor


def test_the_notice_and_the_figures_go_over_the_wire_and_into_the_cli_table():
    from scheduler.api.convert_power import grid_event_from_proto, grid_event_to_proto, grid_status_to_proto
    from scheduler.cli.grid_commands import events_table

    power, jobs, _ = running_site()
    cap = cut_cap_w(power)
    told = GridEvent("told", GridEventKind.CAP_LIMIT, start=NOW + 10, end=NOW + 900, site_id="tx-1", cap_w=cap, notified_at=NOW - 50)
    assert grid_event_from_proto(grid_event_to_proto(told), NOW) == told
    posted = power.handle(GridEventPosted(told, SITES), jobs, NOW + 10)
    read(power, jobs, posted, NOW + 13, meter_w=cap + 40_000)
    status = grid_status_to_proto(power.grid["told"], NOW + 13, met=False)
    assert (status.notice_s, status.over_cap_s, status.max_excess_w, status.below_floor) == (60.0, 3.0, 40_000.0, False)
    assert status.floor_w == pytest.approx(power.sites["tx-1"].power.physical_floor_w)
    assert "no: 3 s over, up to 40.00 kW" in events_table([status])
