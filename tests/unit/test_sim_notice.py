"""Grid events in the simulator come with their notice (issue 13, "Cuts with little or no
notice"): a cut is posted when the grid tells of it, not at the start of the run; one told
at its start overshoots while mining ramps down, and the report gives each cut's time over
its cap and largest excess; with notice the same cut is met. Training power-capped at once
(the bridge) shortens the overshoot of a cut with no notice."""

from __future__ import annotations

import pytest

from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobKind
from scheduler.sim.engine import SimConfig, Simulator
from scheduler.sim.report import summarize
from scheduler.sim.scenario import Arrival, load_events
from tests.unit.test_sim_stops_and_services import T0, one_site, scenario

SITE = one_site(cap_mw=10.0, gpus=512, fleets=(("S21", 2000),))


def cut(notice_s: float) -> GridEvent:
    start = T0 + 1800
    return GridEvent("cut", GridEventKind.CAP_LIMIT, start, start + 1500, site_id="s0", cap_w=4e6, notified_at=start - notice_s)


def run(notice_s: float) -> tuple[Simulator, dict]:
    training = [Arrival(0.0, JobKind.TRAINING, 256, 3 * 3600.0, job_id="t", slowdown_tolerance_pct=50)]
    sim = Simulator(scenario([SITE], training, [cut(notice_s)], hours=0.95), SimConfig(tick_s=10.0, order_delay_s=2.0)).run()
    return sim, summarize(sim)["sites"]["s0"]["grid_events"]["cut"]


def test_a_cut_is_posted_when_the_grid_tells_of_it():
    sim, figures = run(notice_s=600.0)
    assert sim.scheduler.power.grid["cut"].received_at == pytest.approx(T0 + 1200.0)
    assert figures == {"notice_s": 600.0, "over_cap_s": 0.0, "max_excess_w": 0.0}  # time enough: met


def test_a_cut_with_no_notice_overshoots_while_mining_ramps_and_the_report_says_how_much():
    sim, figures = run(notice_s=0.0)
    assert sim.scheduler.power.grid["cut"].received_at == pytest.approx(T0 + 1800.0)
    assert figures["notice_s"] == 0.0 and figures["over_cap_s"] > 0 and figures["max_excess_w"] > 0
    ramp_s = max(f.model.ramp_down_s for f in SITE.power.fleets)
    assert figures["over_cap_s"] <= ramp_s + 10.0 + 2.0  # the ramp, a tick and the order's way


def test_the_scenario_format_takes_a_notice(tmp_path):
    path = tmp_path / "events.yaml"
    path.write_text("events:\n  - {kind: cap_limit, site: s0, cap_mw: 4, start: +1h, end: +2h, notice_s: 300}\n  - {kind: cap_limit, site: s0, cap_mw: 5, start: +3h, end: +4h}\n")
    told, ahead = load_events(path, T0, [SITE])
    assert told.notified_at == T0 + 3600 - 300 and ahead.notified_at == 0.0


def test_gpu_power_caps_bridge_a_cut_with_no_notice_faster_than_mining_can():
    """A training-heavy site cut at once: GPU caps (applied after the order's way) shorten the
    time over the cap to the order delay; without the bridge it lasts the miners' ramp."""
    import dataclasses
    import math

    from scheduler.core.dispatch import dispatch_site

    def without_bridge(inputs, now, policy, cause):
        return dispatch_site(dataclasses.replace(inputs, cut_in_force_w=math.inf), now, policy, cause)

    site = one_site(cap_mw=4.0, gpus=2048, fleets=(("S21", 500),))
    start = T0 + 1800
    late = GridEvent("cut", GridEventKind.CAP_LIMIT, start, start + 1500, site_id="s0", cap_w=3.2e6, notified_at=start)
    training = [Arrival(0.0, JobKind.TRAINING, 2048, 3 * 3600.0, job_id="t", slowdown_tolerance_pct=50)]
    config = SimConfig(tick_s=10.0, order_delay_s=2.0)
    figures = {}
    for name, dispatch in (("bridged", dispatch_site), ("mining only", without_bridge)):
        sim = Simulator(scenario([site], training, [late], hours=0.95), config, dispatch=dispatch).run()
        figures[name] = summarize(sim)["sites"]["s0"]["grid_events"]["cut"]["over_cap_s"]
    assert figures["bridged"] == pytest.approx(config.order_delay_s, abs=0.1)
    assert figures["mining only"] > config.order_delay_s + 1.0  # and part of the 5 s ramp down to the cap
