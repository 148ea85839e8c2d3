"""The simulator as a closed loop: random small sites, jobs, cap cuts, emergencies,
prices and agent delays through the engine never draw more than the enforced cap,
and its books balance. Then the other side: the violation counter does fire when
dispatch is fed a wrong cap, when a cap cut comes with no lead time, or when runs
start before the agent confirmed mining is down, so the property is not vacuous."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.core.dispatch import SiteInputs, dispatch_site
from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobKind, JobState
from scheduler.core.power import MINER_MODELS, Fleet, SitePower
from scheduler.sim.engine import Scenario, SimConfig, Simulator
from scheduler.sim.report import J_PER_MWH, summarize
from scheduler.sim.scenario import Arrival, ScenarioSite
from scheduler.sim.traces import Hashprice, PriceTrace

T0 = 1_717_200_000.0  # 2024-06-01, as epoch seconds


def price_trace(prices: list[float], interval_s: float = 900.0) -> PriceTrace:
    return PriceTrace("mem", tuple(T0 + i * interval_s for i in range(len(prices))), {"node": tuple(prices)}, interval_s)


def one_site(cap_mw: float = 10.0, gpus: int = 32, fleets=(("S21", 1500), ("S19XP", 1500)), overhead: float = 1.1, site_id: str = "s0") -> ScenarioSite:
    power = SitePower(site_id, cap_mw * 1e6, overhead, tuple(Fleet(f"{site_id}/{m}", MINER_MODELS[m], n) for m, n in fleets), gpus)
    return ScenarioSite(power, "r0", "node")


def scenario(sites, arrivals=(), events=(), prices=(20.0,) * 16, hours: float = 2.0, hashprice: float = 45.0) -> Scenario:
    return Scenario(tuple(sites), price_trace(list(prices)), None, Hashprice.constant(hashprice), tuple(arrivals), tuple(events), T0, T0 + hours * 3600)


def cap_cut(site_id: str, cap_w: float, start_s: float, end_s: float, n: int = 0) -> GridEvent:
    return GridEvent(f"cut{n}", GridEventKind.CAP_LIMIT, T0 + start_s, T0 + end_s, site_id=site_id, cap_w=cap_w)


# ------------------------------------------------------------------ strategies
@st.composite
def sites(draw):
    result = []
    for i in range(draw(st.integers(1, 2))):
        models = draw(st.lists(st.sampled_from(sorted(MINER_MODELS)), max_size=3, unique=True))
        fleets = tuple((m, draw(st.integers(20, 600))) for m in models)
        gpus = draw(st.sampled_from([0, 8, 64, 512, 2048]))
        overhead = draw(st.sampled_from([1.04, 1.1, 1.3]))
        full = (gpus * 1000 + sum(n * MINER_MODELS[m].rated_w for m, n in fleets)) * overhead
        cap_mw = draw(st.floats(0.3, 1.2)) * max(full, 1e5) / 1e6
        spec = one_site(cap_mw, gpus, fleets, overhead, f"s{i}")
        floor = (spec.power.gpus * spec.power.gpu_idle_w + spec.power.mining_floor_w) * overhead
        if floor * 1.01 >= spec.power.cap_w:
            spec = dataclasses.replace(spec, power=dataclasses.replace(spec.power, cap_w=floor * 1.5 + 1e4))
        result.append(dataclasses.replace(spec, region=draw(st.sampled_from(["r0", "r1"]))))
    return result


@st.composite
def worlds(draw):
    site_list = draw(sites())
    tick = draw(st.sampled_from([1.0, 5.0, 20.0, 60.0, 120.0]))
    ticks = draw(st.integers(10, 120))
    span = tick * ticks
    config = SimConfig(
        tick_s=tick,
        order_delay_s=draw(st.floats(0.0, 1.5)) * tick,
        reading_delay_s=draw(st.floats(0.0, 3.0)) * tick,
        policy=dataclasses.replace(SimConfig().policy, min_on_s=draw(st.sampled_from([0.0, 300.0])), min_off_s=draw(st.sampled_from([0.0, 300.0]))),
    )
    max_gpus = max(s.power.gpus for s in site_list)
    arrivals = []
    for n in range(draw(st.integers(0, 16)) if max_gpus else 0):
        kind = draw(st.sampled_from([JobKind.TRAINING, JobKind.INFERENCE]))
        arrivals.append(
            Arrival(
                draw(st.floats(0, span / 2)),
                kind,
                draw(st.integers(1, max(1, max_gpus // 2))),
                draw(st.floats(10, span)),
                draw(st.integers(0, 2)),
                draw(st.sampled_from([0.0, 10.0, 25.0, 50.0])) if kind == JobKind.TRAINING else 0.0,
                draw(st.sampled_from([(), ("r0",), ("r1",)])),
                2.0,
                f"j{n}",
            )
        )
    events = []
    for n in range(draw(st.integers(0, 4))):
        spec = draw(st.sampled_from(site_list))
        start = draw(st.floats(0, span))
        end = start + draw(st.floats(tick, span))
        if draw(st.booleans()):
            floor = (spec.power.gpus * spec.power.gpu_idle_w + spec.power.mining_floor_w) * spec.power.overhead
            cap = floor + draw(st.one_of(st.floats(0.001, 0.3), st.floats(0.3, 1.0))) * (spec.power.cap_w - floor)
            respond_by = start + draw(st.sampled_from([0.0, 30.0, 300.0]))
            events.append(GridEvent(f"e{n}", GridEventKind.CAP_LIMIT, T0 + start, T0 + end, site_id=spec.site_id, cap_w=cap, respond_by=T0 + respond_by))
        else:
            events.append(GridEvent(f"e{n}", GridEventKind.EMERGENCY, T0 + start, T0 + end, site_id=spec.site_id))
    interval = draw(st.sampled_from([60.0, 300.0, 900.0]))
    prices = draw(st.lists(st.one_of(st.floats(-50, 150), st.floats(150, 5000)), min_size=int(span // interval) + 1, max_size=int(span // interval) + 1))
    sc = Scenario(
        tuple(site_list),
        price_trace(prices, interval),
        price_trace([p * 0.8 for p in prices], interval) if draw(st.booleans()) else None,
        Hashprice((T0, T0 + span / 2), (45.0, draw(st.floats(10, 90)))),
        tuple(sorted(arrivals, key=lambda a: a.time_s)),
        tuple(events),
        T0,
        T0 + span,
    )
    return sc, config


def run(sc: Scenario, config: SimConfig, **kwargs) -> Simulator:
    """A run that keeps every finished job (the engine drops them) in `sim.done_jobs`."""
    done: dict = {}
    sim = Simulator(sc, config, on_finished=lambda sj: done.__setitem__(sj.job.job_id, sj), **kwargs)
    sim.done_jobs = done
    return sim.run()


def assert_books_balance(sim: Simulator) -> None:
    summary = summarize(sim)
    every_job = {**sim.jobs, **sim.done_jobs}
    assert summary["profit_usd"] == pytest.approx(summary["mining_revenue_usd"] + summary["ai_revenue_usd"] - summary["power_cost_usd"], abs=0.05)
    for view in sim.sites.values():
        tot, oh = view.totals, view.spec.power.overhead
        # Energy at the meter = (AI + mining) x overhead = the sum of tick powers x tick lengths.
        assert tot.meter_j == pytest.approx((tot.ai_j + tot.mining_j) * oh, rel=1e-9, abs=1e-3)
        assert sum(r.measured_w * r.tick_s for r in view.rows) == pytest.approx(tot.meter_j, rel=1e-9, abs=1e-3)
        assert sum((r.ai_w + r.mining_w + r.overhead_w) * r.tick_s for r in view.rows) == pytest.approx(tot.meter_j, rel=1e-9, abs=1e-3)
        # Mining never draws more than its nameplate; curtailment splits into its two parts.
        assert -1e-3 <= tot.unused_headroom_j <= tot.nameplate_j - tot.mining_j + 1e-3
        site_summary = summary["sites"][view.spec.site_id]
        parts = site_summary["curtailed_unused_headroom_mwh"] + site_summary["curtailed_for_ai_and_caps_mwh"]
        assert parts == pytest.approx(site_summary["energy_curtailed_mwh"], abs=2e-3)
        assert site_summary["energy_mwh"] == pytest.approx(tot.meter_j / J_PER_MWH, abs=1e-3)
        # GPUs: never more claimed than the site has.
        assert sum(j.total_gpus for j in sim.on_site(view.spec.site_id).values()) <= view.spec.power.gpus
    # AI revenue is exactly the work done (less what stops lost) times its value.
    ai_usd = sum(v.totals.ai_usd for v in sim.sites.values())
    assert ai_usd == pytest.approx(sum(sj.work_gpu_s / 3600 * sj.arrival.value_usd_per_gpu_hour for sj in every_job.values()), rel=1e-9, abs=1e-6)
    # Every job is in exactly one place, a finished job did all its work (once), and
    # what is left to do plus what was done is the whole job.
    places = [set(sim.pending)] + [set(sim.on_site(site_id)) for site_id in sim.sites]
    done = set(sim.done_jobs)
    assert all(sj.job.state == JobState.SUCCEEDED for sj in sim.done_jobs.values())
    assert not done & set(sim.jobs)
    assert sum(len(p) for p in places) == len(sim.jobs)
    assert set().union(*places) == set(sim.jobs)
    assert summary["jobs"]["arrived"] == len(every_job) and summary["jobs"]["done"] == len(done)
    for sj in sim.done_jobs.values():
        assert sj.work_gpu_s == pytest.approx(sj.arrival.duration_s * sj.arrival.gpus, rel=1e-6)
    for sj in sim.jobs.values():
        if sj.job.state == JobState.PENDING:  # in the queue, so not running (a SCHEDULED one may be starting): its remaining work is current
            assert sj.work_gpu_s == pytest.approx((sj.arrival.duration_s - sj.remaining_s) * sj.arrival.gpus, rel=1e-6, abs=1e-6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds())
def test_no_cap_violation_and_the_books_balance(world):
    sc, config = world
    sim = run(sc, config)
    for view in sim.sites.values():
        assert view.violation_ticks == 0, (view.spec.site_id, view.totals.max_excess_w, view.totals.violation_s)
    assert_books_balance(sim)


# ------------------------------------------------------------------ the counter can fire
def cut_world(**config) -> tuple[Scenario, SimConfig]:
    """Mining that pays fills a 10 MW site; from minute 30 the grid holds it to 6 MW."""
    site = one_site(10.0, gpus=0)
    return scenario([site], events=[cap_cut(site.site_id, 6e6, 1800, 3600)]), SimConfig(**config)


def test_the_cut_is_met_with_the_default_lead():
    sim = Simulator(*cut_world()).run()
    assert sim.sites["s0"].violation_ticks == 0
    assert max(r.mining_w for r in sim.sites["s0"].rows) > 8e6  # mining did fill the cap before the cut


def test_a_cap_cut_with_no_lead_time_is_counted():
    sim = Simulator(*cut_world(lead_s=0.0)).run()
    view = sim.sites["s0"]
    assert view.violation_ticks >= 1
    assert 0 < view.totals.violation_s <= 5.0 + 1.0 + 1e-6  # ramp-down + the order's way
    assert view.totals.max_excess_w > 1e6


def test_a_dispatch_that_ignores_the_grid_cap_is_counted():
    def ignores_the_cut(inputs: SiteInputs, now, policy, cause=""):
        return dispatch_site(dataclasses.replace(inputs, cap_w=inputs.site.cap_w), now, policy, cause)

    sc, config = cut_world()
    sim = Simulator(sc, config, dispatch=ignores_the_cut).run()
    assert sim.sites["s0"].violation_ticks >= 25
    assert summarize(sim)["cap_violation_s"] > 1700


def test_starting_runs_before_mining_is_confirmed_down_is_counted():
    """Trusting targets instead of held power (no make-room-first) breaks the cap."""

    def trusts_targets(inputs: SiteInputs, now, policy, cause=""):
        return dispatch_site(dataclasses.replace(inputs, held_w=dict(inputs.targets_w)), now, policy, cause)

    site = one_site(10.0, gpus=8000)  # the run needs most of what mining draws
    jobs = [Arrival(600.0, JobKind.TRAINING, 8000, 600.0, job_id="big")]
    config = SimConfig(tick_s=2.0)  # ticks shorter than a fleet's 5 s ramp-down
    honest = run(scenario([site], jobs, hours=0.5), config)
    big = {**honest.jobs, **honest.done_jobs}["big"]
    assert honest.sites["s0"].violation_ticks == 0 and big.first_start is not None
    assert big.first_start >= T0 + 600 + 5  # waited until the agent saw mining down
    broken = Simulator(scenario([site], jobs, hours=0.5), config, dispatch=trusts_targets).run()
    assert broken.sites["s0"].violation_ticks >= 1


def test_a_cap_cut_during_an_emergency_below_the_inference_load_is_met():
    site = one_site(1.0, gpus=512, fleets=())
    jobs = [Arrival(0.0, JobKind.INFERENCE, 400, 3600.0, job_id="serve")]
    emergency = GridEvent("em", GridEventKind.EMERGENCY, T0 + 600, T0 + 3600, site_id="s0")
    cut = cap_cut("s0", 0.2e6, 1200, 2400)  # below what the inference service draws
    sim = Simulator(scenario([site], jobs, [emergency, cut], hours=1.0), SimConfig()).run()
    assert sim.sites["s0"].violation_ticks == 0
