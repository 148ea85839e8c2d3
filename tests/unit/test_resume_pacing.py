"""After a cut, mining comes back at the configured pace (scheduler/core/resume.py through
the power state machine): at most resume_mw_per_min x resume_step_s at once, one step per
resume_step_s, never as one surge; lowering is never paced; no pacing configured: at once."""

from __future__ import annotations

from scheduler.core.decisions import SetMiningTargets
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.job_table import JobTable
from scheduler.core.mining import MiningPolicy
from scheduler.core.power_state import DispatchDue, GridEventPosted, PowerRead, PowerReading, PowerSettings, PowerState, SiteAttached
from scheduler.core.resume import resume_room_w
from tests.builders import NOW, a_site_power

POWER = a_site_power("tx-1").cap_mw(7).with_miners("S21", 1800).with_gpus(800).build()
CUT_END = NOW + 600


def pass_at(power: PowerState, jobs: JobTable, at: float) -> float:
    """One dispatch pass at `at`, the agent reading mining at its new targets; returns mining's target (IT W)."""
    decision = power.handle(DispatchDue(sweep=True), jobs, at)
    sent = [o for o in decision.urgent if isinstance(o, SetMiningTargets)]
    targets = sent[-1].targets_w if sent else power.sites["tx-1"].targets
    power.handle(PowerRead("tx-1", PowerReading({f: (w, w) for f, w in targets.items()}, 0, 0, 0)), jobs, at)
    return sum(targets.values())


def after_a_cut(policy: MiningPolicy) -> tuple[PowerState, JobTable, float, float]:
    power, jobs = PowerState(PowerSettings(policy=policy)), JobTable()
    power.handle(SiteAttached("tx-1", POWER), jobs, NOW)
    full = pass_at(power, jobs, NOW)
    cut = GridEvent("cut", GridEventKind.CAP_LIMIT, start=NOW + 1, end=CUT_END, site_id="tx-1", cap_w=1e6)
    power.handle(GridEventPosted(cut, frozenset({"tx-1"})), jobs, NOW + 1)
    low = pass_at(power, jobs, NOW + 2)
    assert low < full / 4  # the cut took mining down at once, unpaced
    return power, jobs, full, low


def test_mining_comes_back_in_paced_steps_after_a_cut_ends():
    policy = MiningPolicy(resume_mw_per_min=1.2, resume_step_s=30)  # 0.6 MW at the meter per step
    power, jobs, full, low = after_a_cut(policy)
    step_it = 0.6e6 / POWER.overhead
    levels, at = [low], CUT_END
    while levels[-1] < full - 1 and at < CUT_END + 3600:
        levels.append(pass_at(power, jobs, at))
        assert pass_at(power, jobs, at + 10) == levels[-1]  # no second raise within a step
        at += 30
    rises = [b - a for a, b in zip(levels, levels[1:])]
    assert levels[-1] >= full - 1, "mining never came all the way back"
    assert all(0 <= r <= step_it + 1 for r in rises), rises
    assert len(rises) >= (full - low) / step_it - 1  # it took steps, not one surge


def test_without_pacing_mining_comes_back_at_once():
    power, jobs, full, _ = after_a_cut(MiningPolicy())
    assert pass_at(power, jobs, CUT_END) >= full - 1


def test_the_pace_is_one_step_per_step_time():
    policy = MiningPolicy(resume_mw_per_min=6.0, resume_step_s=20)
    assert resume_room_w(policy, None, 100.0) == 2e6
    assert resume_room_w(policy, 90.0, 100.0) == 0.0
    assert resume_room_w(policy, 80.0, 100.0) == 2e6
    assert resume_room_w(MiningPolicy(), 99.0, 100.0) == float("inf")
