"""The simulator as hard on the policy as the world (issue 10): a stopped training run
keeps its power until it has checkpointed or its grace is over and loses what it could
not save; inference services run for hours to days with a daily demand that the plant
reports; committed_w is what dispatch committed; rows and finished jobs stream out."""

from __future__ import annotations

import csv
import math
import random

import pytest

from scheduler.core.grid import GridEvent, GridEventKind
from scheduler.core.jobs import JobKind, JobState
from scheduler.core.power import MINER_MODELS, Fleet, SitePower
from scheduler.sim import workload
from scheduler.sim.engine import Scenario, SimConfig, Simulator
from scheduler.sim.physics import Checkpointing, Environment, Plant, RunPhysics
from scheduler.sim.report import TIMESERIES_COLUMNS, TimeseriesWriter, summarize, write_timeseries
from scheduler.sim.scenario import Arrival, ScenarioSite
from scheduler.sim.services import Demand, Service
from scheduler.sim.traces import Hashprice, PriceTrace

T0 = 1_717_200_000.0  # 2024-06-01 00:00 UTC
LOAD_W, IDLE_W = 1000.0, 150.0


def still() -> Environment:
    return Environment(cap_w=lambda t: 1e12, price=lambda t: 20.0, hashprice=lambda t: 45.0, next_change=lambda t: float("inf"))


def plant_with(run: RunPhysics) -> Plant:
    plant = Plant(SitePower("s", 1e12, 1.0, (), run.gpus, gpu_load_w=LOAD_W, gpu_idle_w=IDLE_W), 0.0, 0.0)
    plant.send(0.0, ("start", run))
    return plant


def stop_after(run: RunPhysics, ran_s: float, grace_s: float) -> tuple[tuple, list, float]:
    """Run `ran_s`, send a stop with `grace_s`, run on: (the stopped message, the seconds
    the run still drew its power after the stop, the AI revenue)."""
    plant = plant_with(run)
    usd = plant.advance(0.0, ran_s, still()).ai_usd
    plant.send(ran_s, ("stop", run.job_id, grace_s))
    above_idle_j, t = 0.0, ran_s
    while t < ran_s + 400:
        totals = plant.advance(t, t + 1.0, still())
        usd += totals.ai_usd
        above_idle_j += totals.ai_j - run.gpus * IDLE_W * 1.0
        t += 1.0
    stopped = [m for m in plant.receive(t) if m[0] == "stopped"]
    assert len(stopped) == 1
    return stopped[0], above_idle_j / (run.gpus * (LOAD_W - IDLE_W)), usd


def training(write_s: float = 6.3, every_s: float = 600.0, step_s: float = 10.0) -> RunPhysics:
    return RunPhysics("t", 8, 1.0, 10_000.0, 3.6, checkpointing=Checkpointing(every_s, step_s, write_s))


def test_a_stop_with_grace_keeps_the_power_until_the_checkpoint_is_written_and_loses_nothing():
    # 1,005 s of work: periodic checkpoint at 600; its step ends at 1,010; written 6.3 s later.
    (_, _, remaining, lost), drawing_s, usd = stop_after(training(), 1005.0, grace_s=30.0)
    assert lost == 0.0 and remaining == pytest.approx(10_000.0 - 1010.0)
    assert drawing_s == pytest.approx(5.0 + 6.3)  # to the step's end, then writing
    assert usd == pytest.approx(1010.0 * 8 / 3600 * 3.6)


def test_a_stop_whose_grace_runs_out_loses_the_work_since_the_last_checkpoint():
    (_, _, remaining, lost), drawing_s, usd = stop_after(training(write_s=148.8), 1005.0, grace_s=30.0)
    assert lost == pytest.approx(1010.0 - 600.0)  # the grace's 5 s of work included
    assert remaining == pytest.approx(10_000.0 - 600.0)
    assert drawing_s == pytest.approx(30.0)  # it drew its power for the whole grace
    assert usd == pytest.approx(600.0 * 8 / 3600 * 3.6)  # lost work earns nothing


def test_a_stop_without_grace_is_at_once_and_loses_the_work_since_the_periodic_checkpoint():
    (_, _, remaining, lost), drawing_s, _ = stop_after(training(), 1005.0, grace_s=0.0)
    assert lost == pytest.approx(405.0) and remaining == pytest.approx(10_000.0 - 600.0)
    assert drawing_s == pytest.approx(0.0, abs=1e-9)


def test_a_resumed_run_counts_its_resume_point_as_saved():
    run = RunPhysics("t", 8, 1.0, 10_000.0 - 1010.0, 3.6, checkpointing=Checkpointing(600.0, 10.0, 6.3), progress_s=1010.0)
    (_, _, remaining, lost), _, _ = stop_after(run, 100.0, grace_s=0.0)
    assert lost == pytest.approx(100.0) and remaining == pytest.approx(10_000.0 - 1010.0)


def test_inference_stops_at_once_and_has_nothing_to_lose():
    (_, _, remaining, lost), drawing_s, _ = stop_after(RunPhysics("i", 8, 1.0, 10_000.0, 2.35), 1005.0, grace_s=30.0)
    assert lost == 0.0 and remaining == pytest.approx(10_000.0 - 1005.0)
    assert drawing_s == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ services
def test_demand_follows_the_day_and_the_minute_shape():
    d = Demand(100.0, trough=0.35, peak_hour_utc=20.0)
    assert d(T0 + 20 * 3600) == pytest.approx(100.0) and d(T0 + 8 * 3600) == pytest.approx(35.0)
    shaped = Demand(100.0, trough=0.35, peak_hour_utc=20.0, shape=(0.5, 1.5))
    assert shaped(T0 + 20 * 3600) == pytest.approx(50.0) and shaped(T0 + 20 * 3600 + 60) == pytest.approx(150.0, rel=1e-4)


def test_generated_inference_is_long_running_services_with_serve_fields(tmp_path):
    trace = tmp_path / "azure.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(f"2023-11-16 18:{m:02d}:00.0000000,1000,{100 if m < 30 else 300}\n" for m in range(60)))
    jobs = workload.generate([trace], 8192, 4096, 7 * 86400.0, seed=3, inference_share=0.3, training_share=0.0)
    assert jobs == workload.generate([trace], 8192, 4096, 7 * 86400.0, seed=3, inference_share=0.3, training_share=0.0)
    services = [a for a in jobs if a.kind == JobKind.INFERENCE]
    assert services and all(a.service is not None for a in services)
    assert min(a.duration_s for a in services if a.time_s > 0) >= 6 * 3600  # hours to days, not 15-minute blocks
    assert max(a.duration_s for a in services) > 2 * 86400
    at_start = [a for a in services if a.time_s == 0.0]
    peak_gpus = sum(a.service.max_replicas * a.service.replica_gpus for a in at_start)
    assert 0.2 * 8192 <= peak_gpus <= 0.4 * 8192  # inference_share of all GPUs at the services' peaks
    a = at_start[0]
    spec = a.job_spec()
    assert spec.served and spec.total_gpus == a.gpus and spec.replica_bounds == (a.service.min_replicas, a.service.max_replicas)
    assert spec.target_rps_per_replica == a.service.target_rps_per_replica > 0
    # the trough needs the min replicas, the peak (90 %) fits in the max
    svc = a.service
    assert svc.demand.peak_rps <= svc.max_replicas * svc.target_rps_per_replica
    assert svc.demand.peak_rps * svc.demand.trough <= svc.min_replicas * svc.target_rps_per_replica + 1e-9


def one_site(cap_mw: float = 10.0, gpus: int = 64, fleets=(("S21", 1500),)) -> ScenarioSite:
    power = SitePower("s0", cap_mw * 1e6, 1.1, tuple(Fleet(f"s0/{m}", MINER_MODELS[m], n) for m, n in fleets), gpus)
    return ScenarioSite(power, "r0", "node")


def scenario(sites, arrivals=(), events=(), hours: float = 2.0) -> Scenario:
    prices = PriceTrace("mem", tuple(T0 + i * 900.0 for i in range(200)), {"node": (20.0,) * 200}, 900.0)
    return Scenario(tuple(sites), prices, None, Hashprice.constant(45.0), tuple(arrivals), tuple(events), T0, T0 + hours * 3600)


def test_the_plant_reports_each_services_demand_and_the_job_keeps_it():
    svc = Service(8, 2, 4, 50.0, Demand(150.0, peak_hour_utc=0.0))
    arrivals = [Arrival(0.0, JobKind.INFERENCE, 16, 7200.0, 10, value_usd_per_gpu_hour=2.35, job_id="svc", service=svc)]
    sim = Simulator(scenario([one_site()], arrivals, hours=1.0), SimConfig())
    sim.run()
    job = sim.scheduler.jobs["svc"]
    assert job.state == JobState.RUNNING and job.spec.served
    load = sim.serve_loads("s0")["svc"]
    # the newest reading the scheduler has at the last tick (3,540 s): taken at 3,480 s, a tick's delay before
    assert load.requests_per_s == pytest.approx(svc.demand(T0 + 3480), rel=1e-9)
    assert load.requests_per_s != pytest.approx(svc.demand(T0 + 60))
    # the scheduler's scaler read it as it reads an agent's report and sized the service for it
    assert sim.scheduler.power.serve.demand[job.run_id] == load.requests_per_s
    wanted = min(svc.max_replicas, max(svc.min_replicas, math.ceil(svc.demand(T0 + 3420) / svc.target_rps_per_replica)))
    assert load.replicas == job.current_replicas and job.current_replicas == wanted > svc.min_replicas


# ------------------------------------------------------------------ the engine
def test_a_preempted_run_loses_its_unsaved_work_and_redoes_it():
    """A cut to below the training's load, planned with the scheduler's lead. A run with no
    checkpoint grace stops at once and loses the work since its last periodic checkpoint,
    which it then does again; with the default 30 s grace the lead includes the grace
    (core.power_state.planning_lead_s), so the run checkpoints in time and loses nothing."""
    site = one_site(cap_mw=0.5, gpus=256, fleets=())
    cut = GridEvent("cut", GridEventKind.CAP_LIMIT, T0 + 2900, T0 + 3600, site_id="s0", cap_w=0.1e6)

    def run_with_grace(grace_s: float):
        arrivals = [Arrival(0.0, JobKind.TRAINING, 256, 4 * 3600.0, job_id="t", checkpoint_every_s=1800.0, checkpoint_grace_s=grace_s)]
        done = {}
        sim = Simulator(scenario([site], arrivals, [cut], hours=6.0), SimConfig(), on_finished=lambda sj: done.setdefault(sj.job.job_id, sj)).run()
        assert sim.sites["s0"].violation_ticks == 0
        return sim, done["t"]

    graceful = run_with_grace(30.0)[1]
    assert graceful.preemptions == 1 and graceful.lost_s == 0.0
    sim, sj = run_with_grace(0.0)
    assert sj.preemptions == 1 and sj.lost_s == pytest.approx(2900 - 1800 - sim.sites["s0"].lead_s, abs=61.0)
    assert sj.work_gpu_s == pytest.approx(4 * 3600.0 * 256)  # paid once for each second of work kept
    summary = summarize(sim)
    assert summary["gpu_hours_lost"] == pytest.approx(sj.lost_s * 256 / 3600, abs=0.1)


def test_committed_w_is_what_dispatch_committed_and_unconfirmed_w_the_rest():
    site = one_site(cap_mw=10.0, gpus=0, fleets=(("S21", 2500),))
    cut = GridEvent("cut", GridEventKind.CAP_LIMIT, T0 + 1800, T0 + 3600, site_id="s0", cap_w=2e6)
    sim = Simulator(scenario([site], (), [cut], hours=1.0), SimConfig()).run()
    rows = sim.sites["s0"].rows
    assert all(r.committed_w <= r.planning_cap_w + 1.0 for r in rows)
    assert any(r.unconfirmed_w > 1e6 for r in rows)  # fleets not yet confirmed down after the cut's planning began
    assert all(r.unconfirmed_w >= 0 for r in rows)


def test_rows_and_finished_jobs_stream_out_and_the_report_is_the_same():
    site = one_site(cap_mw=10.0, gpus=512)
    rng = random.Random(5)
    arrivals = sorted(
        (Arrival(rng.uniform(0, 7200), JobKind.TRAINING, rng.choice([64, 128]), rng.uniform(300, 1800), job_id=f"j{n}") for n in range(40)),
        key=lambda a: a.time_s,
    )
    cut = GridEvent("cut", GridEventKind.CAP_LIMIT, T0 + 3600, T0 + 5400, site_id="s0", cap_w=4e6)
    kept = Simulator(scenario([site], arrivals, [cut], hours=3.0), SimConfig()).run()
    streamed_rows = []
    streamed = Simulator(scenario([site], arrivals, [cut], hours=3.0), SimConfig(), rows=streamed_rows.append).run()
    assert streamed_rows == kept.sites["s0"].rows and streamed.sites["s0"].rows == []
    assert summarize(streamed) == summarize(kept)
    assert summarize(kept)["jobs"]["done"] >= 30 and len(kept.jobs) <= 10  # the finished ones were dropped


def test_the_streaming_writer_writes_the_same_csv_as_the_kept_rows(tmp_path):
    site = one_site()
    kept = Simulator(scenario([site], hours=0.5), SimConfig()).run()
    write_timeseries(kept, tmp_path / "a.csv")
    with TimeseriesWriter(tmp_path / "b.csv") as sink:
        Simulator(scenario([site], hours=0.5), SimConfig(), rows=sink).run()
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    with (tmp_path / "b.csv").open() as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == TIMESERIES_COLUMNS and "unconfirmed_w" in header
