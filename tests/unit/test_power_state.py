"""The power state machine on its own (scheduler/core/power_state.py): stimuli in, decisions
out, no controller, store or event loop. Queries leave the state as they found it."""

from __future__ import annotations

import copy
import dataclasses

from scheduler.core.decisions import SetMiningTargets, StartRun, start_order
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.job_table import JobTable
from scheduler.core.jobs import JobState
from scheduler.core.ledger import claim_for
from scheduler.core.power_state import DispatchDue, GridEventPosted, PowerRead, PowerReading, PowerSettings, PowerState, SiteAttached
from tests.builders import NOW, a_job, a_site_power

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1800).with_gpus(800).build()  # a run of 800 GPUs needs mining down


def started_state() -> tuple[PowerState, JobTable]:
    power, jobs = PowerState(PowerSettings()), JobTable()
    power.handle(SiteAttached("tx-1", POWER), jobs, NOW)
    decision = power.handle(DispatchDue(), jobs, NOW)
    targets = decision.urgent[0].targets_w
    power.handle(PowerRead("tx-1", PowerReading({f: (w, w) for f, w in targets.items()}, 0, 0, 0)), jobs, NOW)
    return power, jobs


def place(jobs: JobTable, job_id: str) -> StartRun:
    job = a_job().training(gpus=800).build()
    job = jobs.put(dataclasses.replace(job, job_id=job_id, state=JobState.SCHEDULED, site_id="tx-1", attempt=1))
    return start_order(job)


def test_a_start_is_held_until_the_agent_reads_mining_down_then_released():
    power, jobs = started_state()
    start = place(jobs, "j1")
    assert power.hold_starts([start]) == []  # a managed site: the start waits
    first = power.handle(DispatchDue(), jobs, NOW + 1)
    assert not [o for o in first.orders if isinstance(o, StartRun)]
    lowered = [o for o in first.urgent if isinstance(o, SetMiningTargets)][-1].targets_w
    power.handle(PowerRead("tx-1", PowerReading({f: (w, w) for f, w in lowered.items()}, 0, 0, 0)), jobs, NOW + 2)
    second = power.handle(DispatchDue(), jobs, NOW + 2)
    released = [o for o in second.orders if isinstance(o, StartRun)]
    assert released == [start]
    assert power.hold_starts(released) == released  # a released start passes the gate once


def test_queries_leave_the_state_as_they_found_it():
    power, jobs = started_state()
    running = jobs.put(dataclasses.replace(a_job().training(gpus=4).build(), job_id="r", state=JobState.RUNNING, site_id="tx-1", attempt=1))
    power.hold_starts([place(jobs, "w")])
    cut = GridEvent("cut", GridEventKind.CAP_LIMIT, start=NOW + 120, end=NOW + 900, site_id="tx-1", cap_w=3e6)
    power.handle(GridEventPosted(cut, frozenset({"tx-1"})), jobs, NOW)
    assert running.run_id and power.sites["tx-1"].held_starts
    before = copy.deepcopy((power.sites, power.grid, power.serve, power.dirty))
    for at in (NOW, NOW + 100, NOW + 200, NOW + 2000):  # before the cut is planned for, during, after
        power.capacity("tx-1", jobs, at)
        power.figures("tx-1", jobs, at)
        power.inputs("tx-1", power.sites["tx-1"], jobs, at)
        power.site_capacity("tx-1", "us", (800, 4), "", jobs, at)
        assert copy.deepcopy((power.sites, power.grid, power.serve, power.dirty)) == before, at


def test_a_run_reported_gone_frees_what_it_held():
    power, jobs = started_state()
    power.sites["tx-1"].stopping["j-r1"] = claim_for(a_job().training(gpus=8).build())  # ordered to stop
    power.handle(PowerRead("tx-1", PowerReading({}, 0, 0, 0, active_runs=frozenset({"j-r1"}))), jobs, NOW)
    assert "j-r1" in power.sites["tx-1"].stopping  # still drawing
    power.handle(PowerRead("tx-1", PowerReading({}, 0, 0, 0, active_runs=frozenset())), jobs, NOW + 1)
    assert "j-r1" not in power.sites["tx-1"].stopping and "tx-1" in power.dirty
